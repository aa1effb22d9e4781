"""Issue 7: the benchmark runs end to end and writes its results (a smoke run on the build under test)."""
import json
import subprocess
import time

from conftest import BUILD, ROOT


def test_benchmark_runs_in_under_two_minutes_and_writes_results(tmp_path):
    out = tmp_path / "results.json"
    started = time.monotonic()
    run = subprocess.run([str(ROOT / "scripts" / "bench"), "--quick", "--bin-dir", str(BUILD), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - started < 120
    results = json.loads(out.read_text())
    for key in ("latency_true_ms", "throughput_64", "latency_200kB_output_ms", "memory_idle", "memory_after_runs",
                "start_to_hello_ms", "targets"):
        assert key in results, key
    assert results["latency_true_ms"]["node_p50"] > 0 and results["latency_true_ms"]["raw_spawn_p50"] > 0
    assert results["memory_idle"]["pss_mib"] > 0
    assert set(results["targets"]) == {"overhead_p50_ms", "overhead_p99_ms", "throughput_ratio", "idle_pss_mib",
                                       "start_to_hello_ms"}
    assert "| system.run /bin/true p50 / p99 (ms): request written → result received on the gateway's socket |" in run.stdout
