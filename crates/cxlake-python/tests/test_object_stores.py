"""A lake on a real S3 server (s3s-fs, installed by scripts/install-test-servers and started here):
`storage_options=` reaches the store, results match the same lake on local disk, COPY commits to
the bucket, and credentials stay out of error messages."""

import os
import pathlib
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

import cxlake
from ports import free_port, wait_for_port

SAMPLE = pathlib.Path(__file__).resolve().parents[3] / "sample-data" / "lake"
ACCESS_KEY = "python-test-access"
SECRET_KEY = "python-test-secret-7c41d9"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    binary = os.environ.get("CXLAKE_S3S_FS")
    if not binary or not os.path.exists(binary):
        pytest.fail("run through `bash scripts/test`, which installs s3s-fs and sets CXLAKE_S3S_FS")
    root = tmp_path_factory.mktemp("s3")
    shutil.copytree(SAMPLE, root / "lake")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--access-key", ACCESS_KEY,
         "--secret-key", SECRET_KEY, str(root)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, "s3s-fs", server)
    yield root, {
        "aws.endpoint": f"http://127.0.0.1:{port}",
        "aws.access_key_id": ACCESS_KEY,
        "aws.secret_access_key": SECRET_KEY,
        "aws.region": "us-east-1",
    }
    server.kill()
    server.wait()


def test_storage_options_read_a_lake_on_s3(s3):
    _, options = s3
    remote = cxlake.Lake(lake="s3://lake/", storage_options=options)
    local = cxlake.Lake(lake=str(SAMPLE))
    query = "SELECT channel, nps(score) AS nps, count(*) AS n FROM surveys GROUP BY channel ORDER BY channel"
    assert remote.sql(query).to_arrow().equals(local.sql(query).to_arrow())


def test_copy_to_s3_commits_and_errors_hide_credentials(s3):
    root, options = s3
    lake = cxlake.Lake(lake="s3://lake/", storage_options=options)
    lake.sql(
        "COPY (SELECT channel, count(*) AS n FROM surveys GROUP BY channel) "
        "TO 's3://lake/kpis/by_channel/' STORED AS PARQUET"
    )
    written = sorted(p.relative_to(root / "lake" / "kpis").as_posix()
                     for p in (root / "lake" / "kpis").rglob("*") if p.is_file())
    # One file per output partition and the marker; no staging left behind.
    assert "by_channel/_SUCCESS" in written, written
    parquet = [p for p in written if p != "by_channel/_SUCCESS"]
    assert parquet and all(p.startswith("by_channel/") and p.endswith(".parquet") for p in parquet), written
    counts = [n for p in parquet for n in pq.read_table(root / "lake" / "kpis" / p).column("n").to_pylist()]
    assert sum(counts) == lake.sql("SELECT count(*) AS n FROM surveys").to_arrow()["n"][0].as_py()

    wrong = dict(options, **{"aws.secret_access_key": "wrong-python-secret-55"})
    with pytest.raises(cxlake.CxlakeError) as failure:
        cxlake.Lake(lake="s3://lake/", storage_options=wrong)
    message = str(failure.value)
    assert "credentials were refused" in message
    assert "wrong-python-secret-55" not in message and SECRET_KEY not in message
