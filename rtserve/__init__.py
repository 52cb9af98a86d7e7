"""rtserve: self-hostable real-time serving for MLflow models, managed as code.

One distribution, three parts, each with its own extra of dependencies:

- `rtserve.server` (folder `backend/`, extra `server`): the backend, its CLI and the scoring workers;
- `rtserve.provider` (folder `provider/`, extra `iac`): the Terraform provider and the embedded Terraform;
- `rtserve.cdk` (folder `cdk/`, the base install plus `cdktf` or `cdktn`): the CDK for Terraform constructs.

`rtserve.spec` holds the API's enums, defaults and rules that all three share. The version has one
source, the distribution's metadata (pyproject.toml).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rtserve")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
