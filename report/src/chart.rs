//! The SVG: latency distribution above, arrival over time below.
//!
//! Drawn with plotters' SVG backend into a string, then written in one go,
//! so a write error is an ordinary I/O error on the output path. Both
//! panels use the same colour per transport.

use crate::error::{Error, Result};
use crate::load::{percentile, Series};
use chrono::{DateTime, Utc};
use plotters::prelude::*;
use std::path::Path;

/// Colour of the WebSocket series (`#1F77B4` in the SVG).
pub const WS_COLOR: RGBColor = RGBColor(0x1F, 0x77, 0xB4);
/// Colour of the polling series (`#FF7F0E` in the SVG).
pub const POLL_COLOR: RGBColor = RGBColor(0xFF, 0x7F, 0x0E);

/// A line's points in chart coordinates.
type Points = Vec<(f64, f64)>;

/// Lowest latency the log axis shows; a tick at or below it (clock skew
/// between the exchange and us) is drawn there and counted in the legend.
const LATENCY_FLOOR_MS: f64 = 0.01;
/// Points per line, so a long run still gives a small file.
const MAX_POINTS: usize = 2000;
const SIZE: (u32, u32) = (1100, 900);

/// Draws both panels into `out`.
pub fn draw(out: &Path, title: &str, ws: &Series, poll: &Series) -> Result<()> {
    let mut svg = String::new();
    render(&mut svg, title, ws, poll).map_err(|message| Error::Draw {
        path: out.to_path_buf(),
        message,
    })?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(out, svg).map_err(|e| Error::io(out, e))
}

fn render(
    svg: &mut String,
    title: &str,
    ws: &Series,
    poll: &Series,
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 24)).map_err(|x| e(&x))?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);
    latency_panel(&top, ws, poll)?;
    arrival_panel(&bottom, ws, poll)?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Cumulative distribution of each series' latency on a log axis.
fn latency_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ws: &Series,
    poll: &Series,
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let curves: Vec<(&Series, Points, usize)> = [ws, poll]
        .into_iter()
        .map(|s| {
            let (points, floored) = cdf_points(&s.sorted_latencies());
            (s, points, floored)
        })
        .collect();
    let (lo, hi) = curves
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(x, _)| *x))
        .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
    // Whole decades, so the log axis labels land on 0.1, 1, 10, 100 ...
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);

    let mut chart = ChartBuilder::on(area)
        .caption(
            "Latency, exchange time to received time: share of ticks at or below",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..100f64)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc("% of ticks")
        .x_label_formatter(&|v| format_ms(*v))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (series, points, floored) in curves {
        let color = color_of(series);
        let mut label = format!(
            "{}: {} ticks, p50 {} ms, p99 {} ms",
            series.transport.label(),
            series.len(),
            format_ms(percentile(&series.sorted_latencies(), 50.0).unwrap_or(0.0)),
            format_ms(percentile(&series.sorted_latencies(), 99.0).unwrap_or(0.0)),
        );
        if floored > 0 {
            label.push_str(&format!(
                " ({floored} at or below {LATENCY_FLOOR_MS} ms drawn at {LATENCY_FLOOR_MS})"
            ));
        }
        draw_curve(&mut chart, points, color, label)?;
    }
    draw_legend(&mut chart)
}

/// Cumulative ticks received since the first tick of either series.
fn arrival_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    ws: &Series,
    poll: &Series,
) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let t0 = ws
        .received
        .iter()
        .chain(&poll.received)
        .min()
        .copied()
        .ok_or("no tick to draw")?;
    let curves: Vec<(&Series, Points)> = [ws, poll]
        .into_iter()
        .map(|s| (s, arrival_points(&s.received, t0)))
        .collect();
    let x_max = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(0f64, f64::max)
        .max(1.0);
    let y_max = ws.len().max(poll.len()) as f64;

    let mut chart = ChartBuilder::on(area)
        .caption("Ticks received over time (cumulative)", ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max * 1.02, 0f64..(y_max * 1.05).max(1.0))
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first tick")
        .y_desc("ticks received")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|x| e(&x))?;
    for (series, points) in curves {
        let color = color_of(series);
        let label = format!(
            "{}: {} ticks, {} gap notices",
            series.transport.label(),
            series.len(),
            series.gap_notices
        );
        draw_curve(&mut chart, points, color, label)?;
    }
    draw_legend(&mut chart)
}

/// One series as a line, with its legend entry.
fn draw_curve<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: Points,
    color: RGBColor,
    label: String,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: plotters::coord::CoordTranslate<From = (f64, f64)>,
{
    chart
        .draw_series(LineSeries::new(points, color.stroke_width(2)))
        .map_err(|x| x.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
    Ok(())
}

/// The legend both panels draw in their upper left corner.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|x| x.to_string())
}

fn color_of(s: &Series) -> RGBColor {
    match s.transport {
        crate::Transport::Ws => WS_COLOR,
        crate::Transport::Poll => POLL_COLOR,
    }
}

/// Points of the empirical CDF of ascending `sorted` latencies, at most
/// [`MAX_POINTS`], each latency raised to [`LATENCY_FLOOR_MS`]; also returns
/// how many were raised.
fn cdf_points(sorted: &[f64]) -> (Points, usize) {
    let n = sorted.len();
    let floored = sorted.iter().filter(|v| **v <= LATENCY_FLOOR_MS).count();
    let step = n.div_ceil(MAX_POINTS).max(1);
    let mut points: Points = (0..n)
        .step_by(step)
        .chain(n.checked_sub(1))
        .map(|i| {
            (
                sorted[i].max(LATENCY_FLOOR_MS),
                100.0 * (i + 1) as f64 / n as f64,
            )
        })
        .collect();
    points.dedup_by(|a, b| a == b);
    (points, floored)
}

/// A staircase of cumulative arrivals: time is cut into at most
/// [`MAX_POINTS`] bins, and each bin that received ticks adds a vertical
/// step, so a poller's bursts stay visible as steps.
fn arrival_points(received: &[DateTime<Utc>], t0: DateTime<Utc>) -> Points {
    let mut secs: Vec<f64> = received
        .iter()
        .map(|t| (*t - t0).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .collect();
    secs.sort_by(f64::total_cmp);
    let Some(&last) = secs.last() else {
        return Vec::new();
    };
    let width = (last / MAX_POINTS as f64).max(0.001);
    let mut points = vec![(0.0, 0.0)];
    let mut count = 0usize;
    let mut i = 0;
    while i < secs.len() {
        let bin = (secs[i] / width).floor();
        let x = bin * width;
        let before = count;
        while i < secs.len() && (secs[i] / width).floor() == bin {
            i += 1;
            count += 1;
        }
        points.push((x, before as f64));
        points.push((x, count as f64));
    }
    points
}

/// `0.5`, `12`, `1.2k` milliseconds: short axis and legend labels.
fn format_ms(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cdf_reaches_100_percent_and_floors_non_positive_latencies() {
        let (points, floored) = cdf_points(&[-2.0, 0.0, 1.0, 3.0]);
        assert_eq!(floored, 2);
        assert_eq!(points.first(), Some(&(LATENCY_FLOOR_MS, 25.0)));
        assert_eq!(points.last(), Some(&(3.0, 100.0)));
        let many: Vec<f64> = (0..10_000).map(f64::from).collect();
        let (points, _) = cdf_points(&many);
        assert!(points.len() <= MAX_POINTS + 1, "{} points", points.len());
        assert_eq!(points.last(), Some(&(9999.0, 100.0)));
    }

    #[test]
    fn arrivals_are_a_staircase_ending_at_the_total() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 18, 0, 0).unwrap();
        // Three ticks in one poll at t0 + 1 s, two more at t0 + 2 s.
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        let points = arrival_points(&[at(1), at(1), at(1), at(2), at(2)], t0);
        assert_eq!(points.last().unwrap().1, 5.0);
        assert!(points.contains(&(1.0, 0.0)) && points.contains(&(1.0, 3.0)));
        assert!(points
            .windows(2)
            .all(|w| w[1].1 >= w[0].1 && w[1].0 >= w[0].0));
    }
}
