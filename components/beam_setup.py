"""What every process that runs TFX's Beam components sets up before the first one.

Each is a fixed cost TFX or Beam pays on every component or bundle, removed
in `components.private_apis` (measured in docs/benchmarks.md): the throwaway
TFX sdist for runners that never install it, Beam's option views parsed
again on every transform, and Beam's DoFn signature walk on every bundle.
The local runner, `schema infer` and the Kubeflow container entrypoint call
`prepare()` before they run a component; it is idempotent.
"""

from __future__ import annotations

from components import private_apis


def prepare() -> None:
    """Removes the fixed costs (idempotent)."""
    private_apis.skip_in_process_beam_package()
    private_apis.reuse_beam_option_views()
    private_apis.cache_beam_dofn_specs()
