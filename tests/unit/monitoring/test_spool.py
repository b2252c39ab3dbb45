"""The durable spool, through the monitor that owns it: restarts resume every spooled row, the
bound drops the oldest batches, a torn batch file is set aside."""

from __future__ import annotations

from app.monitoring.window import window_schema
from tests.utils.datasets import german
from tests.utils.monitoring import monitor, records


def test_a_restarted_monitor_resumes_with_every_spooled_row(settings):
    first = monitor(settings)
    assert first.submit(records(100)) == 100 and first.submit(records(50, 100)) == 50
    again = monitor(settings)  # what Ray's restart does: a new process, same folder
    assert (again.recovered, again.status()["buffered_rows"]) == (150, 150)
    kept = sorted(r for _, t in again.buffer.take() for r in t.column("request_id").to_pylist())
    assert kept == sorted(f"r{i}" for i in range(150))
    assert again.buffer.take()[0][1].schema == window_schema(german())


def test_the_buffer_is_bounded_and_drops_the_oldest(settings):
    m = monitor(settings)
    for start in range(0, 400, 100):
        m.submit(records(100, start))
    status = m.status()
    assert (status["buffered_rows"], status["dropped_rows"]) == (200, 200)
    assert len(list(m.spool.glob("*.arrow"))) == 2  # dropped batches leave the disk too


def test_a_torn_spool_file_is_set_aside(settings):
    m = monitor(settings)
    m.submit(records(10))
    (m.spool / "00000000000000000001-bad.arrow").write_bytes(b"not arrow")
    again = monitor(settings)
    assert again.recovered == 10
    assert list(m.spool.glob("*.bad"))


def test_a_commit_forgets_only_the_batches_a_check_used(tmp_path):
    from app.monitoring.spool import Spool

    spool = Spool(tmp_path / "spool", window_schema(german()), max_rows=1_000)
    spool.submit(records(10))
    used = spool.take()
    spool.submit(records(5, 10))  # arrives while the check runs
    spool.commit(used)
    assert spool.rows == 5 and [b.table.num_rows for b in spool.take()] == [5]
    assert sorted(p.name for p in spool.folder.iterdir()) == [spool.take()[0].path.name]


def test_a_spooled_batch_is_renamed_into_place(tmp_path):
    from app.monitoring.spool import Spool

    spool = Spool(tmp_path / "spool", window_schema(german()), max_rows=1_000)
    assert spool.submit(records(3)) == (3, 0)
    assert spool.submit([]) == (0, 0)
    (only,) = spool.folder.iterdir()  # no temp file left beside it
    assert only.suffix == ".arrow"


def test_sampled_rows_stand_for_the_traffic_they_were_kept_from(tmp_path):
    from app.monitoring.spool import Spool

    spool = Spool(tmp_path / "spool", window_schema(german()), max_rows=1_000)
    spool.submit([{**r, "sample_rate": 0.5} for r in records(4)])
    spool.submit(records(2))  # no rate: each row stands for itself
    assert spool.represented() == 4 * 2 + 2


def test_a_batch_spooled_before_decisions_were_kept_resumes_with_them_unknown(tmp_path):
    import pyarrow as pa

    from app.monitoring.spool import Spool, _write_batch

    schema = window_schema(german())
    older = pa.schema([f for f in schema if f.name not in ("decision", "sample_rate")])
    rows = [{k: r.get(k) for k in older.names} for r in records(4)]
    folder = tmp_path / "spool"
    folder.mkdir()
    _write_batch(folder / "00000000000000000001-old.arrow", pa.Table.from_pylist(rows, older))
    spool = Spool(folder, schema, max_rows=1_000)
    assert spool.recover() == 4
    (batch,) = spool.take()
    assert batch.table.schema == schema
    assert batch.table.column("decision").null_count == 4  # not made up
