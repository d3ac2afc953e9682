"""Save a seat's work before its machine goes: the course's ``[teardown] save`` paths, packed
on the machine, brought home over SFTP, unpacked into a folder (``--save-to DIR/<seat>/``, or
the course's state folder) and, when the course names a bucket, copied to
``s3://BUCKET/work/<seat>/``. A seat whose save failed is named, and ``down`` keeps its
machine unless told ``--force``."""

from __future__ import annotations

import shlex
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from labtui.services import ssh
from labtui.services.aws import Aws, translate_errors
from labtui.services.inventory import Machine
from labtui.services.remote import Remote


@dataclass(frozen=True)
class Saved:
    seat: str
    files: int
    folder: Path
    bucket_prefix: str | None = None


def save_seat(remote: Remote, machine: Machine, patterns: tuple[str, ...], folder: Path,
              aws: Aws | None = None, bucket: str | None = None, *, base: str = "~",
              prefix: str = "work") -> Saved:
    """Save one seat's work into ``folder`` (and the bucket, under ``prefix/<seat>/``);
    raises SshError or AwsError. ``patterns`` (``**`` reaches into folders) are relative to
    ``base`` on the machine, the home folder by default; Jupyter's checkpoints stay behind."""
    # validated: "~/" + safe characters and globs
    names = " ".join(p[len(base) + 1:] if p.startswith(base + "/") else p for p in patterns)
    archive = f"/tmp/labtui-work-{machine.seat}.tar.gz"
    where = "~" if base == "~" else "~/" + shlex.quote(base[2:])
    script = (f"cd {where} && shopt -s nullglob dotglob globstar && files=(" + names + ") && "
              f'if [ ${{#files[@]}} -eq 0 ]; then tar czf {archive} -T /dev/null; else '
              f"tar czf {archive} --ignore-failed-read --exclude=.ipynb_checkpoints "
              '-- "${files[@]}" 2>&1; fi && echo "files ${#files[@]}"')
    client = remote.connect(machine, wait=60)
    lines: list[str] = []
    try:
        status = ssh.run(client, "bash -c " + shlex.quote(script), timeout=600,
                         on_line=lambda _stream, text: lines.append(text))
        if status != 0:
            raise ssh.SshError(f"{machine.seat}: packing the work failed (exit {status}): "
                               + " ".join(lines[-3:]))
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "work.tar.gz"
            ssh.get(client, archive, local)
            ssh.run(client, f"rm -f {archive}", timeout=60)
            with tarfile.open(local) as tar:
                members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
                tar.extractall(folder, members=members, filter="data")
        files = sum(1 for p in folder.rglob("*") if p.is_file())
    finally:
        client.close()
    key_prefix = None
    if bucket and aws is not None:
        key_prefix = f"{prefix}/{machine.seat}/"
        s3 = aws.client("s3", "us-east-1")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = key_prefix + path.relative_to(folder).as_posix()
            with translate_errors(f"s3.PutObject s3://{bucket}/{key}"):
                s3.upload_file(str(path), bucket, key)
    return Saved(machine.seat, files, folder, key_prefix)
