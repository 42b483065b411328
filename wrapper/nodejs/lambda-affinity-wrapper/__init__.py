"""The Node.js wrapper's files, shipped in the Python package as `lambda_affinity_wrapper.nodejs` so that
`lambda-affinity layer build` and the emulator find them wherever the package is installed (no Python here)."""
