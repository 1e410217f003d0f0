"""`servesim list`: what is built in, as a table."""

from __future__ import annotations

from rich.table import Table

from sim.errors import ServesimError


def list_table(what: str) -> Table:
    """models | hardware | policies | engines | traces; one line naming the choices otherwise."""
    from hwprofiles import catalog

    t = Table()
    if what == "models":
        for c in ("name", "layers", "hidden", "heads", "kv heads", "params", "context", "hf id"):
            t.add_column(c)
        for n in catalog.model_names():
            m = catalog.model(n)
            t.add_row(
                n,
                str(m.num_layers),
                str(m.hidden_size),
                str(m.num_heads),
                str(m.num_kv_heads),
                f"{m.num_params / 1e9:.1f}B",
                str(m.max_context),
                m.hf_id,
            )
    elif what == "hardware":
        for c in ("name", "memory GiB", "bf16 TFLOP/s", "HBM TB/s", "link GB/s", "$/h", "TDP W"):
            t.add_column(c)
        for n in catalog.gpu_names():
            g = catalog.gpu(n)
            t.add_row(
                n,
                f"{g.memory_bytes / 2**30:.0f}",
                f"{g.bf16_flops / 1e12:.0f}",
                f"{g.mem_bw / 1e12:.2f}",
                f"{g.intra_node_bw / 1e9:.0f} {g.intra_node_link}",
                f"{g.price_per_hour:.2f}",
                f"{g.tdp_w:.0f}",
            )
    elif what == "policies":
        from sim.core.registry import FAMILIES, describe_caps

        for c in ("family", "kind", "what it does", "declares"):
            t.add_column(c)
        for fam, reg in FAMILIES.items():  # built-in kinds and those of installed plugins
            for e in reg:
                t.add_row(fam, e.kind, e.doc, describe_caps(e.caps))
    elif what == "engines":
        _engines_table(t)
    elif what == "traces":
        from sim.workload.traces import trace_names

        t.add_column("name")
        t.add_column("path")
        for n, p in trace_names().items():
            t.add_row(n, str(p))
    else:
        raise ServesimError(f"unknown list {what!r}; known: hardware, models, policies, engines, traces")
    return t


def _engines_table(t: Table) -> None:
    """Serving-engine presets (`serving_engine.kind`) with every term's value; * marks the fittable ones."""
    from sim.core.registry import ENGINES
    from sim.costmodel.engine import ServingEngineConfig, fit_fields, preset

    fit = fit_fields()
    t.add_column("term")
    kinds = ENGINES.kinds()
    for k in kinds:
        t.add_column(k)
    t.add_row("what it is", *(ENGINES.get(k).doc for k in kinds))
    presets = [preset(k) for k in kinds]
    for name in ServingEngineConfig.model_fields:
        if name != "kind":
            t.add_row(name + (" *" if name in fit else ""), *(str(getattr(p, name)) for p in presets))
