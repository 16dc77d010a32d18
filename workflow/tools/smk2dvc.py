"""Write ``dvc.yaml`` from the Snakemake DAG, so the pipeline is defined once (in Snakemake).

    python workflow/tools/smk2dvc.py            # (re)write dvc.yaml
    python workflow/tools/smk2dvc.py --check    # exit 1 if dvc.yaml is stale (CI)
    python workflow/tools/smk2dvc.py --prune-lock   # drop dvc.lock entries of stages gone

Every Snakemake rule becomes one DVC ``foreach`` stage, so adding a dataset or a method adds one
line per stage it takes part in (or one word in a line), not a stage block. The template of each
stage is written once, with ``${item.*}`` where jobs differ; every job's command, dependencies and
outputs are rendered back from the template and compared with the DAG's, so the file cannot drift
from the workflow. Names: ``<rule>@<wildcards>``, e.g. ``dvc repro train_model@synthetic_r4``.

What DVC sees, in fewer, coarser pieces than Snakemake (Snakemake stays the tool for exact reruns):

* training is one stage per dataset: its command trains the dataset's whole run list, unimodal
  runs first, and its output is the dataset's runs folder ``data/runs/<dataset>``. DVC pays a
  fixed cost per stage (measured: 195 stages with one dependency each take 5.0-5.7 s for a no-op
  ``dvc repro`` on a 2-core machine), so one stage per dataset x method could not stay fast;
* a job's library files collapse to their sub-package folders (``src/mcr/methods``);
* DVC cannot interpolate a list into ``deps``, so jobs whose inputs vary in number (a dataset read
  from raw sources) form a second stage of the rule (``make_dataset_from_raw``) with a fixed
  number of input slots; a job with fewer inputs repeats its last one (a duplicate dependency
  changes nothing).

"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import DAGSettings, OutputSettings, ResourceSettings

HEADER = "# Generated from the Snakemake DAG by workflow/tools/smk2dvc.py -- do not edit.\n"
REDIRECT = re.compile(r"\s*>\s*logs/\S+\s+2>&1\s*$")
RUN_FILE = re.compile(r"^(data/runs/[^/]+/[^/]+)/seed\d+/[^/]+$")
#: Inputs that vary in number between the jobs of a rule: rule -> (pattern capturing the name,
#: slot template, name of the second stage).
VARIABLE_INPUTS = {
    "make_dataset": (
        re.compile(r"^data/raw/([^/]+)$"),
        "data/raw/${{item.in{i}}}",
        "make_dataset_from_raw",
    ),
}
#: Long enough that every foreach item stays on one line (one line per dataset or method).
WIDTH = 1000
#: Stages in the order the pipeline runs them.
ORDER = ("extract_raw", "make_dataset", "train_model", "evaluate_runs", "track_runs")
#: Training rules of the generated datasets: each trains one dataset's whole run list.
DATASET_RULE = re.compile(r"^train_dataset_\w+$")
#: Params that are not the command's words (Snakemake's rerun triggers and DVC's deps/params).
NOT_IN_CMD = {"tracked", "code_digest"}
#: Rules whose run files collapse to the dataset's whole runs folder.
PER_DATASET = {"train_model", "evaluate_runs", "track_runs"}
#: Rules whose jobs on one dataset DVC runs as one stage: rule -> the wildcard the jobs' list
#: replaces, and the params sections their per-job keys (``train.methods.mcr``,
#: ``train.variants.mcr_pre_no_con``) merge into; a section any job reads is tracked by every
#: dataset's stage (one template for all of them).
ONE_STAGE_PER_DATASET = {"train_model": ("method", ("train.methods", "train.variants"))}


def dag_jobs(snakefile: Path) -> tuple[list, dict[str, list[str]]]:
    """The DAG's jobs, and the library files each rule's jobs run (``CODE`` in common.smk: the
    rules pass only their digest to Snakemake)."""
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=snakefile)
        workflow.dag(dag_settings=DAGSettings(targets={"all"}, forceall=True))
        inner = workflow._workflow  # private API: snakemake is pinned in requirements.lock
        inner._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
        inner._build_dag()
        return [job for job in inner.dag.jobs if job.output], dict(inner.globals["CODE"])


def collapse(path: str, rule: str) -> str:
    """The path DVC tracks for one Snakemake input or output of ``rule``."""
    parts = Path(path).parts
    if parts[:2] == ("src", "mcr") and len(parts) > 3:
        return str(Path(*parts[:3]))  # a library file -> its sub-package folder
    run = RUN_FILE.match(path)
    if run:
        return str(Path(run.group(1)).parent) if rule in PER_DATASET else run.group(1)
    return path


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def job_spec(job, code: dict[str, list[str]], rule: str) -> dict[str, Any]:
    """A job as DVC sees it: command, dependencies, params, outputs. A generated dataset's
    training job (``train_dataset_<dataset>``, no wildcards) becomes a ``train_model`` job with
    the dataset as its wildcard and its run list as ``runs``."""
    cmd = REDIRECT.sub("", job.shellcmd.strip()).replace(sys.executable, "python")
    wildcards = {k: str(v) for k, v in dict(job.wildcards).items() if k != "seed"}
    if rule != job.rule.name:
        wildcards = {"dataset": str(job.params.dataset)}
    spec: dict[str, Any] = {
        "key": "-".join(wildcards.values()),
        "wildcards": wildcards,
        "cmd": " ".join(cmd.split()),
        "deps": unique(collapse(str(f), rule) for f in [*job.input, *code[rule]]),
        "params": sorted(job.params.tracked) if "tracked" in job.params.keys() else [],  # noqa: SIM118
        "values": {
            name: str(value)
            for name, value in job.params.items()
            if name not in NOT_IN_CMD | set(wildcards) and isinstance(value, str) and value
        },
        "outs": [],
        "metrics": [],
    }
    for out in unique(collapse(str(f), rule) for f in job.output):
        kind = "metrics" if out.startswith("data/metrics/") else "outs"
        spec[kind].append(out)
    return spec


def merge_per_dataset(
    specs: list[dict[str, Any]], wildcard: str, sections: tuple[str, ...]
) -> list:
    """The jobs of one rule as one job per dataset: the command takes the dataset's list of
    ``wildcard`` values (jobs that read other runs of the dataset last, so the unimodal runs
    exist before the methods that start from them); dependencies, params and outputs are the
    union, less what the dataset's own jobs produce."""

    def section(key: str) -> str:
        return next((s for s in sections if key.startswith(s + ".")), key)

    read = {section(k) for spec in specs for k in spec["params"]}
    every_stage = [s for s in sections if s in read]
    by_dataset: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        by_dataset.setdefault(spec["wildcards"]["dataset"], []).append(spec)
    merged = []
    for dataset, jobs in by_dataset.items():
        if len(jobs) == 1 and wildcard not in jobs[0]["wildcards"]:  # one job already
            (job,) = jobs
            values = {k: v for k, v in job["values"].items() if k != "methods"}
            params = [section(k) for k in job["params"] if section(k) == k] + every_stage
            merged.append(
                {
                    **job,
                    "params": unique(params),
                    "values": {**values, "runs": job["values"]["methods"]},
                }
            )
            continue
        outs = unique(o for j in jobs for o in j["outs"])
        jobs = sorted(jobs, key=lambda j: any(d in outs for d in j["deps"]))  # stable
        names = [j["wildcards"][wildcard] for j in jobs]
        flag = f" --{wildcard} "
        shapes = {
            j["cmd"].replace(f"{flag}{n} ", f"{flag}* ") for j, n in zip(jobs, names, strict=True)
        }
        if len(shapes) != 1:
            raise SystemExit(f"{jobs[0]['rule']}@{dataset}: jobs differ beyond --{wildcard}")
        values = {
            k: v
            for k, v in jobs[0]["values"].items()
            if k != "methods" and all(j["values"].get(k) == v for j in jobs)
        }
        merged.append(
            {
                "rule": jobs[0]["rule"],
                "key": dataset,
                "wildcards": {"dataset": dataset},
                "cmd": shapes.pop().replace(f"{flag}* ", f"{flag}{' '.join(names)} "),
                "deps": unique(d for j in jobs for d in j["deps"] if d not in outs),
                "params": unique(
                    [section(k) for j in jobs for k in j["params"] if section(k) == k]
                    + every_stage
                ),
                "values": {**values, "runs": " ".join(names)},
                "outs": outs,
                "metrics": unique(m for j in jobs for m in j["metrics"]),
            }
        )
    return merged


def substitute(text: str, values: dict[str, str]) -> str:
    """``text`` with each wildcard value, where it stands as a whole name, as
    ``${item.<wildcard>}``; library and script paths are left alone (``src/mcr`` is not the
    method ``mcr``)."""

    def one(token: str) -> str:
        if token.startswith(("src/", "workflow/")):
            return token
        for name, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
            pattern = rf"(?<!\w){re.escape(value)}(?!\w|\.\d)"  # r0 is not r0.5
            token = re.sub(pattern, f"${{item.{name}}}", token)
        return token

    return " ".join(one(token) for token in text.split(" "))


def params_entry(keys: list[tuple[str, str]]) -> list[dict[str, list[str]]]:
    """``(params key, as written in the stage)`` -> DVC's ``params`` list, grouped by file."""
    by_file: dict[str, list[str]] = {}
    for key, written in keys:
        by_file.setdefault(f"params/{key.split('.')[0]}.yaml", []).append(written)
    return [{f: sorted(k)} for f, k in sorted(by_file.items())]


def render_template(template: Any, item: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\$\{item\.(\w+)\}", lambda m: item[m.group(1)], template)
    if isinstance(template, list):
        return [render_template(t, item) for t in template]
    return {k: render_template(v, item) for k, v in template.items()}


def job_template(
    spec: dict[str, Any], varying: list[str], slots: tuple[re.Pattern, str] | None, width: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """The stage template of one job, and the job's item (the values it fills in).

    Wildcards, and the job's params that differ between the jobs of the stage (a dataset's
    method list), become ``${item.<name>}``; variable inputs fill ``width`` numbered slots."""
    wildcards = spec["wildcards"]
    item = dict(wildcards)
    cmd = substitute(spec["cmd"], wildcards)
    for name in varying:  # a whole param value, as the rule put it in the command
        value = spec["values"][name]
        item[name] = value
        cmd = cmd.replace(f" {substitute(value, wildcards)} ", f" ${{item.{name}}} ", 1)
    deps = [substitute(d, wildcards) for d in spec["deps"]]
    if slots is not None:
        pattern, slot_template = slots
        found = [pattern.match(d) for d in spec["deps"]]
        names = [m.group(1) for m in found if m]
        deps = [d for d, m in zip(deps, found, strict=True) if not m]
        names += names[-1:] * (width - len(names))  # repeat the last one: same dependency
        for i, name in enumerate(names, 1):
            item[f"in{i}"] = name
            deps.append(slot_template.format(i=i))
    params = []
    for key in spec["params"]:
        if spec["rule"] == "make_dataset":  # data.synthetic, data.real.<name>, ...
            item["params_key"] = key
            params.append((key, "${item.params_key}"))
        else:
            params.append((key, substitute(key, wildcards)))
    template = {
        "cmd": cmd,
        "deps": sorted(set(deps)),
        "params": [written for _, written in params],
        "params_files": params_entry(params),
        "outs": [substitute(o, wildcards) for o in spec["outs"]],
        "metrics": [substitute(m, wildcards) for m in spec["metrics"]],
    }
    return template, item


def stage_group(specs: list[dict[str, Any]], slots: tuple[re.Pattern, str] | None) -> dict:
    """One foreach stage for jobs of one rule that have the same shape."""
    rule = specs[0]["rule"]
    names = sorted({k for s in specs for k in s["values"]})
    varying = [n for n in names if len({s["values"].get(n) for s in specs}) > 1]
    width = 0
    if slots is not None:
        width = max(sum(bool(slots[0].match(d)) for d in s["deps"]) for s in specs)
    pairs = [job_template(spec, varying, slots, width) for spec in specs]
    base = pairs[0][0]
    for spec, (template, item) in zip(specs, pairs, strict=True):
        if template != base:
            raise SystemExit(f"{rule}@{spec['key']}: jobs differ in shape; cannot template them")
        rendered = render_template(base, item)  # the template reproduces every job
        if " ".join(rendered["cmd"].split()) != spec["cmd"] or set(rendered["deps"]) != {
            d for d in spec["deps"]
        }:
            raise SystemExit(f"{rule}@{spec['key']}: the template does not reproduce the job")
    items = [item for _, item in pairs]
    if all(
        list(item) == list(spec["wildcards"])[:1] for item, spec in zip(items, specs, strict=True)
    ):
        (only,) = specs[0]["wildcards"]  # one wildcard, nothing else: a plain list
        stage: dict[str, Any] = {"foreach": [item[only] for item in items]}
        base = render_template(base, {only: "${item}"})
    else:
        stage = {"foreach": {spec["key"]: item for spec, item in zip(specs, items, strict=True)}}
    do: dict[str, Any] = {"cmd": " ".join(base["cmd"].split()), "deps": base["deps"]}
    if base["params_files"]:
        do["params"] = base["params_files"]
    for key in ("outs", "metrics"):
        if base[key]:
            do[key] = base[key]
    stage["do"] = do
    return stage


def single_stage(spec: dict[str, Any]) -> dict[str, Any]:
    stage: dict[str, Any] = {"cmd": spec["cmd"], "deps": sorted(spec["deps"])}
    if spec["params"]:
        stage["params"] = params_entry([(k, k) for k in spec["params"]])
    stage["outs"] = [
        {o: {"cache": False}} if o.startswith("reports/") else o for o in spec["outs"]
    ]
    return stage


def stages(jobs: list, code: dict[str, list[str]]) -> dict[str, Any]:
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for job in sorted(jobs, key=lambda j: str(j.output[0])):
        rule = DATASET_RULE.sub("train_model", job.rule.name)
        spec = job_spec(job, code, rule)
        spec["rule"] = rule
        by_rule.setdefault(rule, []).append(spec)
    out: dict[str, Any] = {}
    rank = {rule: i for i, rule in enumerate(ORDER)}
    for rule, specs in sorted(by_rule.items(), key=lambda kv: rank.get(kv[0], len(ORDER))):
        if not specs[0]["wildcards"]:
            out[rule] = single_stage(specs[0])
            continue
        if rule in ONE_STAGE_PER_DATASET:
            specs = merge_per_dataset(specs, *ONE_STAGE_PER_DATASET[rule])
        pattern, slot, second = VARIABLE_INPUTS.get(rule, (None, "", ""))
        varying = [s for s in specs if pattern and any(pattern.match(d) for d in s["deps"])]
        plain = [s for s in specs if s not in varying]
        if plain:
            out[rule] = stage_group(plain, None)
        if varying:
            out[second] = stage_group(varying, (pattern, slot))
    return out


class FlowItems(yaml.SafeDumper):
    """Block style for the stages, one line per foreach item."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    flow = all(isinstance(v, str) for v in data.values()) and "cmd" not in data
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


FlowItems.add_representer(dict, _represent_dict)


def render(snakefile: Path) -> str:
    body = yaml.dump(
        {"stages": stages(*dag_jobs(snakefile))}, Dumper=FlowItems, sort_keys=False, width=WIDTH
    )
    return HEADER + body


def stage_names(dvc_yaml: dict[str, Any]) -> set[str]:
    """Every stage name ``dvc.yaml`` defines (``rule`` or ``rule@item``)."""
    names = set()
    for rule, stage in dvc_yaml.get("stages", {}).items():
        items = stage.get("foreach") if isinstance(stage, dict) else None
        names |= {f"{rule}@{item}" for item in items} if items is not None else {rule}
    return names


def prune_lock(dvc_yaml: Path, lock: Path) -> int:
    """Drop the ``dvc.lock`` entries of stages ``dvc.yaml`` no longer has: DVC keeps them (after
    a renamed or regrouped stage, an old lock held 2.4 MB of them and a no-op ``dvc repro`` spent
    most of its time reading them). Returns how many went."""
    if not lock.is_file():
        return 0
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    current = stage_names(yaml.load(dvc_yaml.read_text(), Loader=loader))
    data = yaml.load(lock.read_text(), Loader=loader) or {}
    stale = [name for name in data.get("stages", {}) if name not in current]
    if stale:
        for name in stale:
            del data["stages"][name]
        tmp = lock.with_name(f".{lock.name}.tmp")
        tmp.write_text(
            yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
        )
        tmp.replace(lock)
    return len(stale)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if dvc.yaml is stale")
    parser.add_argument("--prune-lock", action="store_true", help="only drop the dvc.lock "
                        "entries of stages dvc.yaml no longer has")  # fmt: skip
    parser.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    parser.add_argument("--out", type=Path, default=Path("dvc.yaml"))
    args = parser.parse_args()
    if args.prune_lock:
        gone = prune_lock(args.out, args.out.with_suffix(".lock"))
        if gone:
            print(f"dvc.lock: removed {gone} entries of stages that no longer exist")
        return 0
    text = render(args.snakefile)
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is STALE: run python workflow/tools/smk2dvc.py and commit it")
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
