"""starflow.sql and sql_stream: results, streaming, errors, and the CLI's numbers bit for bit."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import starflow
from conftest import CATALOGUE, QUERIES, assert_bitwise

# The CLI's job of ages and masses (queries/ages_masses.sql over the DR19 view), ordered so both sides list stars alike.
AGES = (QUERIES / "dr19_inputs.sql").read_text() + ";\n" + (QUERIES / "ages_masses.sql").read_text().rstrip().rstrip(";")


def test_plain_sql_over_a_table():
    table = starflow.sql(
        "SELECT count(*) AS n, count(*) FILTER (WHERE flag_bad) AS bad FROM stars", tables={"stars": str(CATALOGUE)}
    )
    assert table.to_pylist() == [{"n": 6603, "bad": 0}]


def test_ages_and_masses_equal_the_clis_bit_for_bit(cli, small_input, tmp_path):
    ordered = AGES + "\nORDER BY sdss4_apogee_id"
    got = starflow.sql(ordered, defines={"input": str(small_input)})
    out = tmp_path / "cli.parquet"
    (tmp_path / "q.sql").write_text(ordered)
    cli("run", str(tmp_path / "q.sql"), "--define", f"input={small_input}", "-o", str(out))
    want = pq.read_table(out)
    assert got.num_rows == 80
    # real numbers, not nulls: the flows ran
    assert pa.compute.count(got.column("age")).as_py() == got.num_rows
    assert_bitwise(got, want)


def test_the_stream_yields_batches_as_they_come(small_input):
    reader = starflow.sql_stream(
        "SET datafusion.execution.batch_size = 16;"
        "SELECT sdss_id, starflow_mass(teff, e_teff, logg, e_logg, fe_h, e_fe_h, c_h - fe_h, e_c_h, n_h - fe_h, e_n_h)"
        " AS m FROM stars",
        tables={"stars": str(small_input)},
        threads=1,
    )
    assert isinstance(reader, pa.RecordBatchReader)
    assert reader.schema.names == ["sdss_id", "m"]
    sizes = [batch.num_rows for batch in reader]
    assert len(sizes) == 5 and sum(sizes) == 80


def test_statements_run_in_order_and_copy_writes_its_file(small_input, tmp_path):
    out = tmp_path / "bright.parquet"
    result = starflow.sql(
        f"CREATE VIEW bright AS SELECT sdss_id, teff FROM stars WHERE teff > 4800;"
        f"COPY (SELECT * FROM bright ORDER BY sdss_id) TO '{out}'",
        tables={"stars": str(small_input)},
    )
    written = pq.read_table(out)
    assert result.column(0).to_pylist() == [written.num_rows] and written.num_rows > 0
    assert min(written.column("teff").to_pylist()) > 4800
    assert [p.name for p in tmp_path.iterdir()] == ["bright.parquet"]
    # DDL alone returns an empty table
    assert starflow.sql("CREATE VIEW v AS SELECT 1 AS x").num_columns == 0


@pytest.mark.parametrize(
    "call, error, code, message",
    [
        (lambda: starflow.sql("SELEC 1"), starflow.SQLError, 3, "SQL error: syntax error"),
        (lambda: starflow.sql("SELECT * FROM nowhere"), starflow.SQLError, 3, "SQL error: table 'datafusion.public.nowhere' not found"),
        (lambda: starflow.sql("SELECT 1", tables={"t": "/no/such/file.parquet"}), starflow.DataError, 4, "data error:"),
        (lambda: starflow.sql("SELECT 1", threads=0), starflow.UsageError, 2, "threads = 0: from 1 to 256"),
        (lambda: starflow.sql("SELECT 1", s3={"endpint": "x"}), starflow.UsageError, 2, "unknown s3 setting 'endpint'"),
        (lambda: starflow.sql("SELECT ${x}"), starflow.UsageError, 2, "undefined variable ${x}"),
        (lambda: starflow.catalog(str(CATALOGUE), ""), starflow.UsageError, 2, "usage error"),
        (lambda: starflow.catalog(str(CATALOGUE), "/tmp/x", release="dr18"), starflow.UsageError, 2, "dr19 or dr17"),
    ],
)
def test_errors_carry_the_clis_class_and_line(call, error, code, message):
    with pytest.raises(error) as raised:
        call()
    assert isinstance(raised.value, starflow.StarflowError)
    assert raised.value.exit_code == code
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_message_is_the_clis(cli_stderr):
    with pytest.raises(starflow.SQLError) as raised:
        starflow.sql("SELECT nope FROM (SELECT 1 AS x)")
    assert f"starflow: {raised.value}" == cli_stderr("sql", "SELECT nope FROM (SELECT 1 AS x)")


def test_the_gil_is_released_while_a_query_runs(small_input):
    done = threading.Event()

    def query():
        starflow.sql(AGES, defines={"input": str(small_input)}, threads=1)
        done.set()

    worker = threading.Thread(target=query)
    start = time.monotonic()
    worker.start()
    spins = 0
    while not done.is_set():
        spins += 1  # pure Python: runs only while the query does not hold the GIL
    worker.join()
    assert time.monotonic() - start > 0.2, "the query was too quick to tell"
    assert spins > 100_000


def test_models_and_functions_describe_the_engine():
    text = starflow.models()
    assert "models directory:" in text and "onnxruntime:" in text and "ok on cpu" in text
    assert "libonnxruntime.so" in text
    docs = starflow.functions()
    assert docs.startswith("# StarFlow SQL functions") and "starflow_estimate" in docs
