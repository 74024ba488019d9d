"""batch_report: every topic's status, duration, files, cost and error, in one place."""

import dagster as dg

from factory_assets.status import all_statuses
from factory_assets.thumbnail import thumbnail
from factory_assets.video import video
from factory_resources.store import MediaStore


@dg.asset(
    # deps, not inputs: an input would load every partition, including ones never made.
    deps=[video, thumbnail],
    group_name="reporting",
    kinds={"python"},
    description="report.json and report.md under $FACTORY_HOME/reports: one row per topic.",
)
def batch_report(context: dg.AssetExecutionContext, store: MediaStore) -> dg.MaterializeResult:
    statuses = all_statuses(context.instance, store)
    reports = store.cache_dir().parent / "reports"
    reports.mkdir(exist_ok=True)
    store.write_json(reports / "report.json", [s.as_dict() for s in statuses])
    lines = [
        "| topic | status | duration (s) | cost (USD) | video | error |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.topic[:60].replace('|', '/')} | {s.status} | {s.duration_s or ''} | "
        f"{s.cost_usd:.4f} | {s.video or ''} | {(s.error or '').replace('|', '/')[:200]} |"
        for s in statuses
    ]
    total_cost = round(sum(s.cost_usd for s in statuses), 6)
    lines.append(f"| **total** | | | {total_cost:.4f} | | |")
    store.write_text(reports / "report.md", "\n".join(lines) + "\n")
    counts = {
        state: sum(s.status == state for s in statuses) for state in ("done", "failed", "pending")
    }
    return dg.MaterializeResult(
        metadata={
            **{f"topics_{k}": v for k, v in counts.items()},
            "total_cost_usd": total_cost,
            "total_duration_s": round(sum(s.duration_s or 0 for s in statuses), 1),
            "report": dg.MetadataValue.md("\n".join(lines[:52])),
            "path": dg.MetadataValue.path(str(reports / "report.json")),
        }
    )
