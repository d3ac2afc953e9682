"""Headless `labtui bake` and `labtui images`; the work is in labtui/imageops.py."""

from __future__ import annotations

import argparse

from labtui import imageops
from labtui.context import Context
from labtui.course import Course
from labtui.headless import EXIT_OK, emit, with_course


@with_course
def cmd_bake(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    result = imageops.bake(ctx, course, force=args.force)
    image = result.image
    assert image is not None
    emit(args, {"type": "baked", **image.as_json(), "reused": result.reused},
         f"{'reused' if result.reused else 'baked'} {image.image_id} in {image.region} "
         f"(setup {image.digest}, {image.size_gb} GiB, ${image.monthly_usd:.2f}/month); "
         f"machines.ami = \"baked\" launches it")
    return EXIT_OK


@with_course
def cmd_images(args: argparse.Namespace, course: Course, ctx: Context) -> int:
    digest, found = imageops.list_images(ctx, course)
    if args.json:
        for image in found:
            emit(args, image.as_json(digest), "")
        return EXIT_OK
    if not found:
        print(f"{course.id}: no baked image (setup {digest}); `labtui bake` makes one")
        return EXIT_OK
    print(f"{'region':<14} {'image':<22} {'state':<10} {'setup':<17} {'GiB':>4} "
          f"{'$/month':>8}  snapshots")
    for image in found:
        stale = " STALE" if image.digest != digest else ""
        print(f"{image.region:<14} {image.image_id:<22} {image.state:<10} "
              f"{image.digest + stale:<17} {image.size_gb:>4} {image.monthly_usd:>8.2f}  "
              + (", ".join(sid for sid, _ in image.snapshots) or "—"))
    total = sum(i.monthly_usd for i in found)
    print(f"{len(found)} image(s), ${total:.2f}/month; the setup now is {digest}")
    return EXIT_OK
