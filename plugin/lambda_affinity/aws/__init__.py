"""Real AWS: SigV4 signing and verification (sigv4.py) and deploying the probe (deploy.py re-exports
packaging, spec, deployer, rollback, errors and deploy_cli). The only layer with boto3 beside the plugin's
Invoke user."""
