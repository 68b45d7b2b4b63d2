//! The bench's output: one `key: value` line per figure on stdout (stable keys, greppable), and
//! the generated part of `BENCHMARKS.md`.

use std::{fmt::Display, io::Write as _, path::Path};

use super::{
    BenchResults, FloorSeries, IngestSeries,
    floor::{FloorFigures, FloorKind},
    ingest::IngestFigures,
    median,
    procfs::CpuUse,
};

/// Nearest-rank percentiles of a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of `values` (all zero when empty).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let i = ((p / 100.0) * values.len() as f64).ceil() as usize;
            values[i.clamp(1, values.len()) - 1]
        };
        Percentiles {
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: values[values.len() - 1],
            mean: values.iter().sum::<f64>() / values.len() as f64,
        }
    }
}

/// The printed figures, in order.
#[derive(Debug, Default)]
pub struct Report {
    lines: Vec<(String, String)>,
}

fn f1(x: f64) -> String {
    format!("{x:.1}")
}
fn f2(x: f64) -> String {
    format!("{x:.2}")
}
fn f3(x: f64) -> String {
    format!("{x:.3}")
}
fn mib(kib: u64) -> String {
    f1(kib as f64 / 1024.0)
}
fn per_s(n: usize, secs: f64) -> f64 {
    n as f64 / secs.max(1e-9)
}

impl Report {
    /// Prints `key: value` and keeps it.
    pub fn put(&mut self, key: impl Into<String>, value: impl Display) {
        let (key, value) = (key.into(), value.to_string());
        println!("{key}: {value}");
        let _ = std::io::stdout().flush();
        self.lines.push((key, value));
    }

    /// Every line printed so far.
    pub fn lines(&self) -> &[(String, String)] {
        &self.lines
    }

    fn put_cpu(&mut self, prefix: &str, cpu: &CpuUse) {
        self.put(format!("{prefix}.wall_s"), f2(cpu.wall_s));
        self.put(format!("{prefix}.server_s"), f2(cpu.server_s));
        self.put(format!("{prefix}.postgres_s"), f2(cpu.postgres_s));
        self.put(format!("{prefix}.bench_s"), f2(cpu.bench_s));
        self.put(
            format!("{prefix}.machine_busy_pct"),
            f1(cpu.machine_busy_pct),
        );
        self.put(format!("{prefix}.other_s"), f2(cpu.other_s));
    }

    fn put_rounds(&mut self, key: String, values: impl IntoIterator<Item = f64>) {
        let values: Vec<String> = values.into_iter().map(f1).collect();
        self.put(key, values.join(" "));
    }

    /// The figures of the median round of an ingest series (webhook-driven). `prefix` is empty
    /// for the reference configuration and `slots_K.` for the others.
    pub fn put_ingest(&mut self, prefix: &str, series: &IngestSeries) {
        let f = series.median();
        let n = f.spec.n;
        let k = |key: &str| format!("{prefix}{key}");
        self.put(k("config.activity_slots"), f.spec.activity_slots);
        self.put(k("ingest.count"), n);
        self.put(k("ingest.enqueue_s"), f2(f.enqueue_s));
        self.put(
            k("ingest.throughput_to_processing_per_s"),
            f1(per_s(n, f.to_processing_s)),
        );
        if let Some(s) = f.to_ready_s {
            self.put(k("ingest.throughput_to_ready_per_s"), f1(per_s(n, s)));
        }
        if let Some(s) = f.to_closed_s {
            self.put(k("ingest.throughput_to_closed_per_s"), f1(per_s(n, s)));
        }
        self.put_rounds(
            k("ingest.throughput_to_closed_per_s.rounds"),
            series.rounds.iter().map(IngestFigures::closed_per_s),
        );
        let p = &f.latency_to_processing_ms;
        self.put(k("ingest.latency_to_processing_ms.p50"), f1(p.p50));
        self.put(k("ingest.latency_to_processing_ms.p95"), f1(p.p95));
        self.put(k("ingest.latency_to_processing_ms.p99"), f1(p.p99));
        self.put(k("ingest.latency_to_processing_ms.max"), f1(p.max));
        if let Some(p) = &f.latency_to_ready_ms {
            self.put(k("ingest.latency_to_ready_ms.p50"), f1(p.p50));
            self.put(k("ingest.latency_to_ready_ms.p95"), f1(p.p95));
            self.put(k("ingest.latency_to_ready_ms.p99"), f1(p.p99));
        }
        if let Some(h) = f.history_events_per_ingest {
            self.put(k("ingest.history_events_per_ingest"), f1(h));
        }
        if let Some(a) = f.activities_per_ingest() {
            self.put(k("ingest.activities_per_ingest"), a);
        }
        if let Some(a) = f.local_activities_per_ingest() {
            self.put(k("ingest.local_activities_per_ingest"), a);
        }
        if let Some(b) = &f.breakdown {
            self.put(k("ingest.history_event_types"), b.render());
        }
        self.put(
            k("ingest.not_completed"),
            series.rounds.iter().map(|r| r.not_completed).sum::<usize>(),
        );
        if let Some(w) = &f.webhooks {
            self.put(k("ingest.webhooks_delivered"), w.delivered);
            self.put(k("ingest.webhooks_retried"), w.retried);
            self.put(k("ingest.webhooks_failed"), w.failed + w.rejected);
        }
        self.put(k("worker.cpu_s"), f2(f.cpu.worker_s));
        self.put(
            k("worker.cpu_s_per_1000"),
            f2(f.cpu.worker_s * 1000.0 / n as f64),
        );
        self.put_rounds(
            k("worker.cpu_s_per_1000.rounds"),
            series
                .rounds
                .iter()
                .map(|r| r.cpu.worker_s * 1000.0 / r.spec.n as f64),
        );
        self.put(k("worker.cpu_s_with_startup"), f2(f.worker_cpu_total_s));
        self.put(k("worker.idle_rss_mib"), mib(f.worker_idle.rss_kib));
        self.put(k("worker.peak_rss_mib"), mib(f.worker_end.hwm_kib));
        let growth = f.worker_end.hwm_kib.saturating_sub(f.worker_idle.rss_kib);
        self.put(
            k("worker.peak_rss_growth_mib_per_1000"),
            f1(growth as f64 / 1024.0 * 1000.0 / n as f64),
        );
        self.put(
            k("worker.log_warnings"),
            series
                .rounds
                .iter()
                .map(|r| r.worker_log_problems)
                .sum::<usize>(),
        );
        self.put_cpu(&k("ingest.cpu"), &f.cpu);
    }

    /// The figures of the median round of a floor series.
    pub fn put_floor(&mut self, series: &FloorSeries) {
        let f = series.median();
        let name = floor_name(f.kind);
        let k = |key: &str| format!("floor.{name}.{key}");
        self.put(k("activities"), f.kind.activities());
        self.put(k("count"), f.n);
        self.put(k("enqueue_s"), f2(f.enqueue_s));
        self.put(k("throughput_per_s"), f1(f.per_s()));
        self.put_rounds(
            k("throughput_per_s.rounds"),
            series.rounds.iter().map(FloorFigures::per_s),
        );
        self.put(k("latency_ms.p50"), f1(f.latency_ms.p50));
        self.put(k("latency_ms.p95"), f1(f.latency_ms.p95));
        self.put(k("latency_ms.p99"), f1(f.latency_ms.p99));
        self.put(k("history_events"), f1(f.history_events));
        self.put(k("worker_cpu_s"), f2(f.cpu.floor_s));
        self.put(
            k("worker_cpu_s_per_1000"),
            f2(f.cpu.floor_s * 1000.0 / f.n as f64),
        );
        self.put_cpu(&k("cpu"), &f.cpu);
    }

    /// Ours over the floor for one ingest series: in each round, the ingest phase over the
    /// floor phases of the same round; the median of the rounds is printed, then each round.
    pub fn put_ratios(
        &mut self,
        prefix: &str,
        ours: &IngestSeries,
        one: &FloorSeries,
        many: &FloorSeries,
    ) {
        let k = |key: &str| format!("{prefix}ratio.{key}");
        let rounds = || ours.rounds.iter().zip(one.rounds.iter().zip(&many.rounds));
        let ratio = |f: &dyn Fn(&IngestFigures, &FloorFigures, &FloorFigures) -> f64| {
            rounds().map(|(o, (a, b))| f(o, a, b)).collect::<Vec<f64>>()
        };
        let throughput_one = ratio(&|o, a, _| o.closed_per_s() / a.per_s());
        let throughput_many = ratio(&|o, _, b| o.closed_per_s() / b.per_s());
        let events_one = ratio(&|o, a, _| {
            o.history_events_per_ingest.unwrap_or(0.0) / a.history_events.max(1.0)
        });
        let events_many = ratio(&|o, _, b| {
            o.history_events_per_ingest.unwrap_or(0.0) / b.history_events.max(1.0)
        });
        let cpu_many = ratio(&|o, _, b| {
            (o.cpu.worker_s / o.spec.n as f64) / (b.cpu.floor_s / b.n as f64).max(1e-9)
        });
        self.put(k("ours_vs_one_activity"), f3(median(&throughput_one)));
        self.put(k("ours_vs_n_activities"), f3(median(&throughput_many)));
        self.put(
            k("ours_vs_n_activities.rounds"),
            throughput_many
                .iter()
                .map(|r| f3(*r))
                .collect::<Vec<_>>()
                .join(" "),
        );
        self.put(k("history_events_vs_one_activity"), f2(median(&events_one)));
        self.put(
            k("history_events_vs_n_activities"),
            f2(median(&events_many)),
        );
        self.put(k("worker_cpu_vs_n_activities"), f2(median(&cpu_many)));
    }

    /// The figures of the parked phase.
    pub fn put_parked(&mut self, f: &IngestFigures) {
        let n = f.spec.n;
        self.put("parked.count", n);
        self.put("parked.activity_slots", f.spec.activity_slots);
        self.put(
            "parked.throughput_to_processing_per_s",
            f1(per_s(n, f.to_processing_s)),
        );
        self.put(
            "parked.latency_to_processing_ms.p50",
            f1(f.latency_to_processing_ms.p50),
        );
        self.put("parked.worker_idle_rss_mib", mib(f.worker_idle.rss_kib));
        self.put("parked.worker_rss_mib", mib(f.worker_end.rss_kib));
        self.put("parked.worker_peak_rss_mib", mib(f.worker_end.hwm_kib));
        let growth = f.worker_end.rss_kib.saturating_sub(f.worker_idle.rss_kib);
        self.put(
            "parked.rss_kib_per_ingest",
            f2(growth as f64 / n.max(1) as f64),
        );
        self.put(
            "parked.worker_rss_mib_curve",
            f.rss_curve
                .iter()
                .map(|(done, m)| format!("{done}={}", mib(m.rss_kib)))
                .collect::<Vec<_>>()
                .join(" "),
        );
        self.put("parked.worker_cpu_s", f2(f.cpu.worker_s));
        self.put("parked.worker_log_warnings", f.worker_log_problems);
        self.put_cpu("parked.cpu", &f.cpu);
    }
}

/// `one_activity` / `n_activities`: the key segment of a floor.
pub fn floor_name(kind: FloorKind) -> &'static str {
    match kind {
        FloorKind::One => "one_activity",
        FloorKind::Many(_) => "n_activities",
    }
}

/// Every key the smoke run must find (reference configuration only).
pub const REQUIRED_KEYS: &[&str] = &[
    "machine.cores",
    "ingest.throughput_to_processing_per_s",
    "ingest.throughput_to_ready_per_s",
    "ingest.latency_to_processing_ms.p50",
    "ingest.latency_to_processing_ms.p95",
    "ingest.latency_to_processing_ms.p99",
    "ingest.history_events_per_ingest",
    "worker.cpu_s",
    "worker.cpu_s_per_1000",
    "worker.peak_rss_mib",
    "worker.peak_rss_growth_mib_per_1000",
    "floor.one_activity.throughput_per_s",
    "floor.n_activities.throughput_per_s",
    "ratio.ours_vs_one_activity",
    "ratio.ours_vs_n_activities",
    "ratio.history_events_vs_n_activities",
    "parked.count",
    "parked.worker_rss_mib",
    "parked.rss_kib_per_ingest",
];

/// Start and end of the generated part of `BENCHMARKS.md`.
pub const BEGIN_MARK: &str =
    "<!-- rindle-bench:begin (generated by scripts/bench.sh; edits inside are overwritten) -->";
/// See [`BEGIN_MARK`].
pub const END_MARK: &str = "<!-- rindle-bench:end -->";

fn cell(x: Option<String>) -> String {
    x.unwrap_or_else(|| "–".to_owned())
}

/// The generated part of `BENCHMARKS.md`: machine, command, tables and the raw output.
pub fn markdown(results: &BenchResults, report: &Report) -> String {
    let mut md = String::new();
    let m = &results.machine;
    md.push_str(&format!(
        "### Latest run\n\n- Date: {}\n- Machine: {} cores, {}, {} MiB RAM\n- Command: `{}`\n- N = {} ingests (and N bare workflows of each floor kind) enqueued at once, {} concurrent starts; {} interleaved rounds, median round shown; parked = {}; whole run {:.0} s\n\n",
        results.started_at,
        m.cores,
        m.cpu_model,
        m.mem_total_mib,
        results.command_line,
        results.n,
        results.enqueue_concurrency,
        results.rounds,
        results.parked.as_ref().map_or(0, |p| p.spec.n),
        results.duration_s,
    ));

    md.push_str("#### Ingests (webhook-driven), by `[worker] max_concurrent_activities`\n\n");
    md.push_str("| figure (median round) |");
    for s in &results.ingests {
        let default = if s.activity_slots == 4 && s.key_prefix != "baseline." {
            " (shipped default)"
        } else {
            ""
        };
        md.push_str(&format!(" {}{} |", s.title, default));
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(results.ingests.len()));
    md.push('\n');
    type Row = (&'static str, fn(&IngestSeries) -> Option<String>);
    let rows: &[Row] = &[
        ("ingests/s, enqueue → `processing`", |s| {
            let f = s.median();
            Some(f1(per_s(f.spec.n, f.to_processing_s)))
        }),
        ("ingests/s, enqueue → `ready`", |s| {
            let f = s.median();
            f.to_ready_s.map(|t| f1(per_s(f.spec.n, t)))
        }),
        ("ingests/s, enqueue → run closed", |s| {
            Some(f1(s.median().closed_per_s()))
        }),
        ("… each round (enqueue → closed)", |s| {
            Some(
                s.rounds
                    .iter()
                    .map(|r| f1(r.closed_per_s()))
                    .collect::<Vec<_>>()
                    .join(" · "),
            )
        }),
        ("latency to `processing` p50 / p95 / p99 (s)", |s| {
            let p = &s.median().latency_to_processing_ms;
            Some(format!(
                "{:.1} / {:.1} / {:.1}",
                p.p50 / 1000.0,
                p.p95 / 1000.0,
                p.p99 / 1000.0
            ))
        }),
        ("latency to `ready` p50 / p95 / p99 (s)", |s| {
            s.median().latency_to_ready_ms.map(|p| {
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    p.p50 / 1000.0,
                    p.p95 / 1000.0,
                    p.p99 / 1000.0
                )
            })
        }),
        ("history events per ingest", |s| {
            s.median().history_events_per_ingest.map(f1)
        }),
        ("worker CPU s (whole phase / per 1000 ingests)", |s| {
            let f = s.median();
            Some(format!(
                "{} / {}",
                f2(f.cpu.worker_s),
                f2(f.cpu.worker_s * 1000.0 / f.spec.n as f64)
            ))
        }),
        ("worker RSS MiB (idle → peak)", |s| {
            let f = s.median();
            Some(format!(
                "{} → {}",
                mib(f.worker_idle.rss_kib),
                mib(f.worker_end.hwm_kib)
            ))
        }),
        ("Temporal server CPU s", |s| {
            Some(f2(s.median().cpu.server_s))
        }),
        ("PostgreSQL CPU s (all backends)", |s| {
            Some(f2(s.median().cpu.postgres_s))
        }),
        ("bench process CPU s (client, Mux sim)", |s| {
            Some(f2(s.median().cpu.bench_s))
        }),
        ("everything else on the machine, CPU s", |s| {
            Some(f2(s.median().cpu.other_s))
        }),
        ("phase wall time s", |s| Some(f2(s.median().cpu.wall_s))),
        ("machine busy (% of all cores)", |s| {
            Some(f1(s.median().cpu.machine_busy_pct))
        }),
    ];
    for (name, value) in rows {
        md.push_str(&format!("| {name} |"));
        for s in &results.ingests {
            md.push_str(&format!(" {} |", cell(value(s))));
        }
        md.push('\n');
    }

    if !results.floor_one.rounds.is_empty() && !results.floor_many.rounds.is_empty() {
        let (one, many) = (&results.floor_one, &results.floor_many);
        md.push_str(&format!(
            "\n#### Floor: bare workflows on the same server, same rounds (N = {})\n\n",
            one.median().n
        ));
        md.push_str(&format!(
            "| figure (median round) | 1 no-op activity | {} no-op activities |\n|---|---:|---:|\n",
            many.median().kind.activities()
        ));
        type FRow = (&'static str, fn(&FloorSeries) -> String);
        let frows: &[FRow] = &[
            ("workflows/s, start → closed", |s| f1(s.median().per_s())),
            ("… each round", |s| {
                s.rounds
                    .iter()
                    .map(|r| f1(r.per_s()))
                    .collect::<Vec<_>>()
                    .join(" · ")
            }),
            ("latency p50 / p95 / p99 (s)", |s| {
                let p = &s.median().latency_ms;
                format!(
                    "{:.1} / {:.1} / {:.1}",
                    p.p50 / 1000.0,
                    p.p95 / 1000.0,
                    p.p99 / 1000.0
                )
            }),
            ("history events per workflow", |s| {
                f1(s.median().history_events)
            }),
            ("worker CPU s per 1000 (in-process)", |s| {
                let f = s.median();
                f2(f.cpu.floor_s * 1000.0 / f.n as f64)
            }),
            ("Temporal server CPU s", |s| f2(s.median().cpu.server_s)),
            ("everything else on the machine, CPU s", |s| {
                f2(s.median().cpu.other_s)
            }),
            ("phase wall time s", |s| f2(s.median().cpu.wall_s)),
            ("machine busy (% of all cores)", |s| {
                f1(s.median().cpu.machine_busy_pct)
            }),
        ];
        for (name, value) in frows {
            md.push_str(&format!("| {name} | {} | {} |\n", value(one), value(many)));
        }
        md.push_str("\n#### Ours / floor (median of the per-round ratios)\n\n| ratio |");
        for s in &results.ingests {
            md.push_str(&format!(" {} |", s.title));
        }
        md.push_str("\n|---|");
        md.push_str(&"---:|".repeat(results.ingests.len()));
        md.push('\n');
        let lookup = |i: usize, key: &str| {
            let wanted = format!("{}ratio.{key}", results.prefix_of(i));
            report
                .lines()
                .iter()
                .find(|(k, _)| *k == wanted)
                .map(|(_, v)| v.clone())
        };
        for (name, key) in [
            (
                "throughput, ingest / 1-activity workflow",
                "ours_vs_one_activity",
            ),
            (
                "throughput, ingest / n-activity workflow",
                "ours_vs_n_activities",
            ),
            (
                "… each round (ingest / n-activity)",
                "ours_vs_n_activities.rounds",
            ),
            (
                "history events, ingest / 1-activity workflow",
                "history_events_vs_one_activity",
            ),
            (
                "history events, ingest / n-activity workflow",
                "history_events_vs_n_activities",
            ),
            (
                "worker CPU per run, ingest / n-activity workflow",
                "worker_cpu_vs_n_activities",
            ),
        ] {
            md.push_str(&format!("| {name} |"));
            for i in 0..results.ingests.len() {
                md.push_str(&format!(
                    " {} |",
                    cell(lookup(i, key).map(|v| v.replace(' ', " · ")))
                ));
            }
            md.push('\n');
        }
    }

    if let Some(p) = &results.parked {
        md.push_str(&format!(
            "\n#### Parked: {} ingests waiting in `processing` ({} activity slots, no webhooks, poll every 24 h)\n\n",
            p.spec.n, p.spec.activity_slots
        ));
        let growth = p.worker_end.rss_kib.saturating_sub(p.worker_idle.rss_kib);
        md.push_str(&format!(
            "| worker RSS idle → parked (MiB) | peak (MiB) | per parked ingest (KiB) | ingests/s to `processing` |\n|---:|---:|---:|---:|\n| {} → {} | {} | {} | {} |\n",
            mib(p.worker_idle.rss_kib),
            mib(p.worker_end.rss_kib),
            mib(p.worker_end.hwm_kib),
            f2(growth as f64 / p.spec.n.max(1) as f64),
            f1(per_s(p.spec.n, p.to_processing_s)),
        ));
        md.push_str(&format!(
            "\nWorker RSS (MiB) as the ingests parked: {}\n",
            p.rss_curve
                .iter()
                .map(|(done, m)| format!("{done} → {}", mib(m.rss_kib)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    md.push_str("\n<details><summary>Raw output</summary>\n\n```text\n");
    for (k, v) in report.lines() {
        md.push_str(&format!("{k}: {v}\n"));
    }
    md.push_str("```\n\n</details>\n");
    md
}

/// Writes `generated` between the markers of `path`, keeping everything outside them; creates
/// the file (with the markers) when it does not exist.
pub fn update_markdown(path: &Path, generated: &str) -> anyhow::Result<()> {
    let block = format!("{BEGIN_MARK}\n{generated}{END_MARK}");
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (existing.find(BEGIN_MARK), existing.find(END_MARK)) {
        (Some(b), Some(e)) if b < e => format!(
            "{}{block}{}",
            &existing[..b],
            &existing[e + END_MARK.len()..]
        ),
        _ if existing.is_empty() => format!("# Benchmarks\n\n{block}\n"),
        _ => format!("{}\n\n{block}\n", existing.trim_end()),
    };
    std::fs::write(path, text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        let one = Percentiles::of(vec![7.0]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
    }

    #[test]
    fn the_generated_block_replaces_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("B.md");
        update_markdown(&path, "one\n").unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("intro\n{first}\nreading\n")).unwrap();
        update_markdown(&path, "two\n").unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        assert!(second.starts_with("intro\n# Benchmarks"));
        assert!(second.contains("two\n") && !second.contains("one\n"));
        assert!(second.trim_end().ends_with("reading"));
    }
}
