"""The plugin's end-of-run files: each whole or not at all, a failing one said once, the others still written."""

import logging
import os
import resource
import signal

from lambda_affinity.core import summary
from lambda_affinity.locust_plugin.options import AffinityOptions
from lambda_affinity.locust_plugin.outputs import write_outputs

ROW = {
    "user": "u1",
    "requests": 3,
    "max_count": 2,
    "max_share": 2 / 3,
    "warm_hits": 1,
    "cache_known": 2,
    "environments": 2,
    "cold_starts": 1,
    "new_environment_calls": 0,
    "switches": 1,
    "invalid": 0,
}


def errors(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_target_that_cannot_be_written_is_said_once_and_the_others_are_written(tmp_path, caplog):
    (tmp_path / "a.json").mkdir()
    options = AffinityOptions(affinity_json=str(tmp_path / "a.json"), csv_prefix=str(tmp_path / "new" / "run"))
    with caplog.at_level(logging.ERROR, logger="lambda_affinity"):
        report = write_outputs(summary.summarize([ROW], 2), [ROW], options)
    assert errors(caplog) == [
        f"lambda-affinity: {tmp_path}/a.json: exists and is a directory; refusing to replace it; not written"
    ]
    # the missing folder is made for the CSV companions
    assert report.written == [f"{tmp_path}/new/run_affinity.csv", f"{tmp_path}/new/run_affinity_summary.csv"]
    assert (tmp_path / "new" / "run_affinity.csv").read_text().startswith("user,")


def test_a_device_is_refused_not_written_to(tmp_path, caplog):
    with caplog.at_level(logging.ERROR, logger="lambda_affinity"):
        report = write_outputs(summary.summarize([ROW], 2), [ROW], AffinityOptions(affinity_json="/dev/full"))
    assert report.written == [] and errors(caplog) == [
        "lambda-affinity: /dev/full: exists and is a device; refusing to replace it; not written"
    ]


def test_a_full_disk_leaves_the_old_file_whole(tmp_path, caplog):
    """A file size limit (as `ulimit -f`) fails the write midway, as a full disk does."""
    target = tmp_path / "a.json"
    target.write_text('{"old": true}\n')
    rows = [{**ROW, "user": f"u{i}"} for i in range(2000)]  # a document far past the limit
    doc = summary.summarize(rows, 2)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, hard))
    try:
        with caplog.at_level(logging.ERROR, logger="lambda_affinity"):
            report = write_outputs(doc, rows, AffinityOptions(affinity_json=str(target)))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert report.written == []
    assert errors(caplog) == [f"lambda-affinity: {target}: cannot write: File too large; not written"]
    assert target.read_text() == '{"old": true}\n' and os.listdir(tmp_path) == ["a.json"]
