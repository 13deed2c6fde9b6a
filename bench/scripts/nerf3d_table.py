"""Markdown tables of a nerf3d result (docs/benchmarks.md): per run, per method against the issue's targets,
and the wall time each method needs to reach the same occupancy IoU (from the IoU measured along each run); the
same three for the camera-conditioned prior's rows (section camera-prior) where the result has them; and LMC-SDS
against SDS by the DreamFusion recipe (section lmc-sds): per run, then per recipe.

    .venv/bin/python bench/scripts/nerf3d_table.py bench/results/nerf3d.json"""

import json
from pathlib import Path
from statistics import mean


def time_to(curve, iou):
    """Seconds at which a run's occupancy IoU first reaches ``iou`` (None: never)."""
    return next((s for s, v in curve if v >= iou), None)


def main(path):
    record = json.loads(open(path).read())
    tables(record["figures"]["rows"])
    extra_table(record["figures"].get("extra_rows", []))
    diversity_table(record["figures"].get("extra_rows", []))
    if camera := record["figures"].get("camera_prior"):
        print(f"\n### camera-conditioned prior: {json.dumps(camera['prior'])}\n")
        tables(camera["rows"])
        extra_table(camera.get("extra_rows", []))
        diversity_table(camera.get("extra_rows", []))
    if lmc := record["figures"].get("lmc_sds"):
        lmc_tables(lmc["rows"])


def tables(rows):
    print("| prompt | method | seed | s | prior evals | kind | kind by shape | colour | view | occ IoU | mask IoU | PSNR | Janus |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, lab = r["aggregate"], r["aggregate"]["labels"]
        shape = f"{lab['kind_silhouette']:.2f}" if "kind_silhouette" in lab else "-"  # rows from before 2026-12-02: -
        print(f"| {r['prompt']} | {r['method']} | {r['seed']} | {r['seconds']:.0f} | {r['prior_evaluations']} | "
              f"{lab['kind']:.2f} | {shape} | {lab['colour']:.2f} | {lab['view']:.2f} | {a['occupancy_iou']:.2f} | "
              f"{a['mask_iou']:.2f} | {a['psnr']:.1f} | {a['janus_rate'] if a['janus_rate'] is not None else '-'} |")
    print()
    print("| method | runs | s (mean) | kind | colour | view | occ IoU | mask IoU | Janus rate |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in ("ddrep", "sds", "sjc"):
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue
        agg = lambda f: mean(f(r) for r in rs)  # noqa: E731
        janus = [r["aggregate"]["janus_rate"] for r in rs if r["aggregate"]["janus_rate"] is not None]
        print(f"| {m} | {len(rs)} | {agg(lambda r: r['seconds']):.0f} | {agg(lambda r: r['aggregate']['labels']['kind']):.2f} | "
              f"{agg(lambda r: r['aggregate']['labels']['colour']):.2f} | {agg(lambda r: r['aggregate']['labels']['view']):.2f} | "
              f"{agg(lambda r: r['aggregate']['occupancy_iou']):.2f} | {agg(lambda r: r['aggregate']['mask_iou']):.2f} | "
              f"{mean(janus) if janus else '-'} |")
    print()
    print("| prompt | seed | same IoU | DDRep s | SJC s | SDS s | SJC / DDRep |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for r in (r for r in rows if r["method"] == "ddrep"):
        others = {o["method"]: o for o in rows if o["prompt"] == r["prompt"] and o["seed"] == r["seed"] and o["method"] != "ddrep"}
        if "sjc" not in others:
            continue
        target = min(r["aggregate"]["occupancy_iou"], others["sjc"]["aggregate"]["occupancy_iou"])
        t = {m: time_to(o["iou_curve"], target) for m, o in [("ddrep", r), *others.items()]}
        ratio = t["sjc"] / t["ddrep"] if t["ddrep"] and t["sjc"] else None
        ratios += [ratio] if ratio else []
        print(f"| {r['prompt']} | {r['seed']} | {target:.2f} | {t['ddrep']} | {t['sjc']} | {t.get('sds', '-')} | "
              f"{ratio:.2f} |" if ratio else f"| {r['prompt']} | {r['seed']} | {target:.2f} | {t['ddrep']} | {t['sjc']} | - | - |")
    if ratios:
        print(f"\nmean SJC / DDRep time to the same IoU: {mean(ratios):.2f} over {len(ratios)} pairs")


def lmc_tables(rows):
    """Section lmc-sds: labels, shape, and the renders' saturation against the ground truth's at the same cameras."""
    print("\n### LMC-SDS and SDS by the DreamFusion recipe\n")
    print("| prompt | recipe | seed | s | kind | colour | view | occ IoU | mask IoU | PSNR | saturation (ground truth) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, lab, sat = r["aggregate"], r["aggregate"]["labels"], r["saturation"]
        print(f"| {r['prompt']} | {r['label']} | {r['seed']} | {r['seconds']:.0f} | {lab['kind']:.2f} | {lab['colour']:.2f} | "
              f"{lab['view']:.2f} | {a['occupancy_iou']:.2f} | {a['mask_iou']:.2f} | {a['psnr']:.1f} | "
              f"{sat['mean']:.3f} ({sat['ground_truth_mean']:.3f}) |")
    print()
    print("| recipe | runs | s (mean) | kind | colour | view | occ IoU | mask IoU | PSNR | saturation / ground truth's |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label in dict.fromkeys(r["label"] for r in rows):
        rs = [r for r in rows if r["label"] == label]
        agg = lambda f: mean(f(r) for r in rs)  # noqa: E731
        print(f"| {label} | {len(rs)} | {agg(lambda r: r['seconds']):.0f} | {agg(lambda r: r['aggregate']['labels']['kind']):.2f} | "
              f"{agg(lambda r: r['aggregate']['labels']['colour']):.2f} | {agg(lambda r: r['aggregate']['labels']['view']):.2f} | "
              f"{agg(lambda r: r['aggregate']['occupancy_iou']):.2f} | {agg(lambda r: r['aggregate']['mask_iou']):.2f} | "
              f"{agg(lambda r: r['aggregate']['psnr']):.1f} | "
              f"{agg(lambda r: r['saturation']['mean'] / r['saturation']['ground_truth_mean']):.2f} |")


def extra_table(extra):
    if extra:
        print()
        print("| prompt | method | options | n | s | kind | view | occ IoU | mask IoU | pairwise IoU (data) | "
              "pairwise silhouette IoU (data) | silhouette spread / data's |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        cell = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        for r in extra:
            a = r["aggregate"]
            gt = a.get("ground_truth", {})
            pw, gt_pw = a.get("pairwise_occupancy_iou"), gt.get("pairwise_occupancy_iou")
            pm, gt_pm = a.get("pairwise_mask_iou"), gt.get("pairwise_mask_iou")
            spread = None if pm is None or gt_pm is None else (1 - pm) / (1 - gt_pm)
            print(f"| {r['prompt']} | {r['method']} | {json.dumps(r['options'])} | {r['n']} | {r['seconds']:.0f} | "
                  f"{a['labels']['kind']:.2f} | {a['labels']['view']:.2f} | {a['occupancy_iou']:.2f} | {a['mask_iou']:.2f} | "
                  f"{cell(pw)} ({cell(gt_pw)}) | {'-' if pm is None else f'{pm:.3f}'} ({'-' if gt_pm is None else f'{gt_pm:.3f}'}) | "
                  f"{cell(spread)} |")


def diversity_table(extra):
    """3-D diversity per prompt and method over the seeds of its 4-instance runs: each seed's silhouette spread
    against the data's, and the spread of all their pairs (the mean pairwise silhouette IoU over every seed's
    pairs, each run 6 of them) against the data's."""
    runs = [r for r in extra if r["n"] > 1 and r["aggregate"].get("pairwise_mask_iou") is not None]
    if not runs:
        return
    print()
    print("| prompt | method | seeds | spread / data's, per seed | pairwise silhouette IoU (data) | spread / data's |")
    print("|---|---|---|---|---|---|")
    for prompt, method in dict.fromkeys((r["prompt"], r["method"]) for r in runs):
        rs = [r for r in runs if (r["prompt"], r["method"]) == (prompt, method)]
        pm = mean(r["aggregate"]["pairwise_mask_iou"] for r in rs)
        data = mean(r["aggregate"]["ground_truth"]["pairwise_mask_iou"] for r in rs)  # the same data at every seed
        each = ", ".join(f"{(1 - r['aggregate']['pairwise_mask_iou']) / (1 - data):.2f}" for r in rs)
        print(f"| {prompt} | {method} | {', '.join(str(r['seed']) for r in rs)} | {each} | {pm:.3f} ({data:.3f}) | "
              f"{(1 - pm) / (1 - data):.2f} |")


from script_cli import command, refuse  # noqa: E402

_, (path,) = command(__doc__, {None: (1, 1)})
if not Path(path).is_file():
    refuse(f"{path!r} is not a file (e.g. bench/results/nerf3d.json)")
main(path)
