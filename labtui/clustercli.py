"""Headless subcommands for the class's EMR clusters: clusters, submit, steps, step-log,
terminate-cluster, replace-cluster. The work is in labtui/clusterops.py (the console calls
the same functions)."""

from __future__ import annotations

import argparse

from labtui import clusterops, lifecycle
from labtui.context import Context
from labtui.course import Course
from labtui.headless import EXIT_OK, EXIT_PARTIAL, confirm, emit, with_course


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@with_course
def cmd_clusters(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    rows = clusterops.status(ctx, course)
    if args.json:
        for row in rows:
            emit(args, row.to_json(), "")
        return EXIT_OK
    print(f"{'seat':<12}{'cluster':<18}{'state':<24}{'region':<12}{'steps':>6}{'run':>5}"
          f"{'fail':>5}{'idle':>6}{'$ so far':>10}  master / reason")
    for r in rows:
        idle = "-" if r.idle_minutes is None else f"{r.idle_minutes:.0f}m"
        print(f"{r.key:<12}{r.cluster_id or '-':<18}{r.state:<24}{r.region or '-':<12}"
              f"{r.steps_total:>6}{r.steps_running:>5}{r.steps_failed:>5}{idle:>6}"
              f"{_money(r.cost_usd):>10}  {r.master or r.reason or ''}")
    ready = sum(r.state in ("WAITING", "RUNNING") for r in rows)
    failing = sum(r.steps_failed for r in rows)
    print(f"{ready}/{len(rows)} clusters ready, {failing} failed step(s); "
          f"${sum(r.cost_usd or 0 for r in rows):.2f} so far.")
    return EXIT_OK


@with_course
def cmd_submit(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    cluster, step_id = clusterops.submit(ctx, course, args.seat, list(args.remote),
                                         step_name=args.step_name, jar=args.jar,
                                         on_failure=args.on_failure)
    emit(args, {"type": "submitted", "key": cluster.seat, "cluster_id": cluster.cluster_id,
                "step_id": step_id},
         f"{cluster.seat}: step {step_id} added to {cluster.cluster_id}; follow it with "
         f"`labtui steps {args.course} {args.seat}`")
    return EXIT_OK


@with_course
def cmd_steps(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    cluster, found = clusterops.steps(ctx, course, args.seat)
    if args.json:
        for s in found:
            emit(args, {**s.to_json(), "cluster_id": cluster.cluster_id}, "")
        return EXIT_OK
    print(f"{cluster.seat}: cluster {cluster.cluster_id} ({cluster.state}) in {cluster.region}")
    print(f"{'step':<16}{'state':<12}{'started':<27}{'ended':<27}name / reason")
    for s in found:
        print(f"{s.step_id:<16}{s.state:<12}{s.started[:25] or '-':<27}{s.ended[:25] or '-':<27}"
              f"{s.name}" + (f" — {s.reason}" if s.reason else ""))
    failed = [s.step_id for s in found if s.state == "FAILED"]
    if failed:
        print(f"why a step failed: labtui step-log {args.course} {args.seat} {failed[0]}")
    return EXIT_OK


@with_course
def cmd_step_log(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    found = clusterops.step_log(ctx, course, args.seat, args.step_id)
    emit(args, found.to_json(), found.human())
    return EXIT_OK


@with_course
def cmd_terminate_cluster(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    chosen = clusterops.chosen_clusters(ctx, course, args.seats)
    names = ", ".join(f"{c.seat} ({c.cluster_id})" for c in chosen)
    if not confirm(args, f"Terminate {len(chosen)} cluster(s): {names}?"):
        emit(args, {"type": "cancelled"}, "cancelled; nothing was terminated.")
        return EXIT_OK
    done = clusterops.terminate(ctx, course, [c.seat for c in chosen])
    for c in done:
        emit(args, {"type": "terminated", "key": c.seat, "cluster_id": c.cluster_id},
             f"{c.seat}: cluster {c.cluster_id} terminated")
    return EXIT_OK


@with_course
def cmd_replace_cluster(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    key = clusterops.key_of(course, args.seat)
    if not confirm(args, f"Replace the cluster of {key} (the running one is terminated)?"):
        emit(args, {"type": "cancelled"}, "cancelled; nothing changed.")
        return EXIT_OK
    old, new = lifecycle.replace_cluster(ctx, course, args.seat)
    emit(args, {"type": "replaced", "key": key, "old": old.cluster_id if old else None,
                "cluster_id": new.cluster_id},
         f"{key}: new cluster {new.cluster_id}" + (f" (replaces {old.cluster_id})" if old
                                                    else ""))
    last = clusterops.wait_ready(ctx, course, [new])
    return EXIT_OK if last.get(key) and last[key].state in ("WAITING", "RUNNING") \
        else EXIT_PARTIAL
