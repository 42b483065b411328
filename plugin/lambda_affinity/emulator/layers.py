"""A function's layers as Lambda gives them to it, without /opt: each function with `layers:` (or
`affinity_wrapper: true`, which adds the wrapper's own layer first) gets a folder of its own standing for /opt,
the layers extracted into it in order (a later one overwrites an earlier one's files, as on Lambda). The runtimes
put `<opt>/python` on the Python path and `<opt>/nodejs/node_modules` on NODE_PATH, and read an absolute
handler under /opt in it (runtimes/bootstrap.py and bootstrap.mjs, told by OPT_ENV)."""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile

from ..aws.layer import WRAPPER_HANDLER, layer_files
from ..errors import LambdaAffinityError
from .config import FunctionConfig

OPT_ENV = "LAMBDA_AFFINITY_OPT"  # the folder standing for /opt, for the runtime clients


class LayerError(LambdaAffinityError, OSError):
    """A layer could not be extracted (a damaged zip, a full disk)."""


def wrapper_runtime(fn: FunctionConfig) -> str:
    return "nodejs" if fn.is_node else "python"


def runtime_handler(fn: FunctionConfig) -> str:
    """The handler the runtime loads: the wrapper's with `affinity_wrapper`, else the function's own."""
    return WRAPPER_HANDLER[wrapper_runtime(fn)] if fn.affinity_wrapper else fn.handler


def _extract(src: str, opt: str) -> None:
    if os.path.isdir(src):
        shutil.copytree(src, opt, dirs_exist_ok=True, symlinks=True)
        return
    try:
        with zipfile.ZipFile(src) as zf:
            zf.extractall(opt)  # extractall drops absolute paths and `..` from the names
    except (zipfile.BadZipFile, OSError) as exc:
        raise LayerError(f"layer {src}: cannot extract: {exc}") from None


def prepare(functions: list) -> tuple[str | None, dict]:
    """(the temporary folder holding every /opt stand-in or None, {function name: its /opt folder})."""
    wanted = [fn for fn in functions if fn.layers or fn.affinity_wrapper]
    if not wanted:
        return None, {}
    root = tempfile.mkdtemp(prefix="lambda-affinity-opt-")
    try:
        dirs = {}
        for fn in wanted:
            opt = os.path.join(root, fn.name)
            os.mkdir(opt)
            if fn.affinity_wrapper:
                for name, content in layer_files(wrapper_runtime(fn)):
                    path = os.path.join(opt, name)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as fh:
                        fh.write(content)
            for src in fn.layers:
                _extract(src, opt)
            dirs[fn.name] = opt
        return root, dirs
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def environment(fn: FunctionConfig, opt: str | None) -> dict:
    """The variables the layers add: where /opt stands, NODE_PATH as Lambda sets it, the wrapper's handler."""
    env: dict = {}
    if opt is not None:
        env[OPT_ENV] = opt
        if fn.is_node:
            major = fn.runtime.removeprefix("nodejs").removesuffix(".x")
            env["NODE_PATH"] = f"{opt}/nodejs/node{major}/node_modules:{opt}/nodejs/node_modules"
    if fn.affinity_wrapper:
        env["_HANDLER"] = runtime_handler(fn)
        env["AFFINITY_HANDLER"] = fn.handler
    return env
