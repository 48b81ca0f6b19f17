//! Charts as SVG drawn on the server: no script, no library, readable without colour (every
//! bar and point has a `<title>` with its numbers, and each chart has a text summary).

use maud::{Markup, html};

use crate::domain::time::{Millis, format_ms};
use crate::store::{AttemptCount, AttemptOutcome, LATENCY_BOUNDS_MS};

/// A time window and how finely it is cut.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub name: &'static str,
    pub label: &'static str,
    pub span_ms: i64,
    pub bucket_ms: i64,
}

pub const HOUR: Range = Range {
    name: "hour",
    label: "Last hour",
    span_ms: 3_600_000,
    bucket_ms: 60_000,
};

pub const DAY: Range = Range {
    name: "day",
    label: "Last day",
    span_ms: 86_400_000,
    bucket_ms: 20 * 60_000,
};

impl Range {
    pub fn parse(name: Option<&str>) -> Self {
        if name == Some("day") { DAY } else { HOUR }
    }

    fn buckets(&self) -> usize {
        usize::try_from(self.span_ms / self.bucket_ms).unwrap_or(1)
    }

    /// Where the first bucket starts, so that the last one is the current, partial one.
    pub fn since(&self, now: Millis) -> Millis {
        (now / self.bucket_ms) * self.bucket_ms + self.bucket_ms - self.span_ms
    }

    fn minutes_per_bucket(&self) -> f64 {
        self.bucket_ms as f64 / 60_000.0
    }
}

/// One bucket: attempts by outcome and a latency histogram.
#[derive(Debug, Clone, Default)]
pub struct Bucket {
    pub delivered: u64,
    pub http_error: u64,
    pub no_response: u64,
    pub latency: Vec<u64>,
}

impl Bucket {
    pub fn total(&self) -> u64 {
        self.delivered + self.http_error + self.no_response
    }

    fn add(&mut self, other: &Bucket) {
        self.delivered += other.delivered;
        self.http_error += other.http_error;
        self.no_response += other.no_response;
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            *mine += theirs;
        }
    }
}

/// The store's counts laid out on the range's buckets.
pub struct Series {
    pub range: Range,
    pub since: Millis,
    pub buckets: Vec<Bucket>,
}

impl Series {
    pub fn new(range: Range, since: Millis, counts: &[AttemptCount]) -> Self {
        let classes = LATENCY_BOUNDS_MS.len() + 1;
        let mut buckets = vec![
            Bucket {
                latency: vec![0; classes],
                ..Bucket::default()
            };
            range.buckets()
        ];
        for c in counts {
            let Some(bucket) = usize::try_from(c.bucket).ok().and_then(|i| buckets.get_mut(i)) else {
                continue;
            };
            match c.outcome {
                AttemptOutcome::Delivered => bucket.delivered += c.count,
                AttemptOutcome::HttpError => bucket.http_error += c.count,
                AttemptOutcome::NoResponse => bucket.no_response += c.count,
            }
            if let Some(slot) = bucket.latency.get_mut(c.latency_class) {
                *slot += c.count;
            }
        }
        Self {
            range,
            since,
            buckets,
        }
    }

    pub fn total(&self) -> Bucket {
        let mut sum = Bucket {
            latency: vec![0; LATENCY_BOUNDS_MS.len() + 1],
            ..Bucket::default()
        };
        for b in &self.buckets {
            sum.add(b);
        }
        sum
    }

    fn start_of(&self, i: usize) -> Millis {
        self.since + i64::try_from(i).unwrap_or(0) * self.range.bucket_ms
    }
}

/// The `q` quantile (0–1) of a latency histogram, as the upper bound of its class in ms;
/// `None` without attempts. The last class has no bound: it reads as the largest bound.
pub fn percentile(histogram: &[u64], q: f64) -> Option<i64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (class, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return LATENCY_BOUNDS_MS.get(class).or(LATENCY_BOUNDS_MS.last()).copied();
        }
    }
    LATENCY_BOUNDS_MS.last().copied()
}

/// `≤ 5 ms`, as percentiles read from classes are upper bounds.
pub fn latency_label(ms: Option<i64>) -> String {
    match ms {
        None => "—".to_owned(),
        Some(ms) if ms >= 1000 => format!("≤ {:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("≤ {ms} ms"),
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 24.0;

/// A round axis maximum at or above `max`.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|step| step * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

fn number(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn clock(ms: Millis) -> String {
    format_ms(ms).get(11..16).unwrap_or_default().to_owned()
}

/// Where values land on a chart of `series`: one slot per bucket, `y_max` at the top.
struct Plot {
    slot: f64,
    y_max: f64,
}

impl Plot {
    const W: f64 = WIDTH - LEFT - RIGHT;
    const H: f64 = HEIGHT - TOP - BOTTOM;

    fn new(series: &Series, max: f64) -> Self {
        Self {
            slot: Self::W / series.buckets.len().max(1) as f64,
            y_max: nice_ceiling(max),
        }
    }

    /// The left edge of bucket `i`'s slot.
    fn x(&self, i: usize) -> f64 {
        LEFT + self.slot * i as f64
    }

    fn height(&self, v: f64) -> f64 {
        Self::H * v / self.y_max
    }

    /// The y of value `v` (the baseline is at the bottom).
    fn y(&self, v: f64) -> f64 {
        TOP + Self::H - self.height(v)
    }
}

/// One chart: caption, the SVG with its grid, axes and text summary around `marks`, and a
/// legend.
fn chart(
    caption: &str,
    summary: &str,
    series: &Series,
    plot: &Plot,
    unit: &str,
    marks: Markup,
    legend: Markup,
) -> Markup {
    let n = series.buckets.len();
    let last = n.saturating_sub(1);
    html! {
        figure.chart-box {
            figcaption { (caption) }
            svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary) {
                title { (summary) }
                @for step in 0..=2 {
                    @let v = plot.y_max * f64::from(step) / 2.0;
                    @let y = plot.y(v);
                    line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) {}
                    text.axis x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" { (number(v)) }
                }
                text.axis x=(LEFT) y=(HEIGHT - 6.0) { (clock(series.start_of(0))) " UTC" }
                text.axis x=((LEFT + WIDTH - RIGHT) / 2.0) y=(HEIGHT - 6.0) text-anchor="middle" { (clock(series.start_of(n / 2))) }
                text.axis x=(WIDTH - RIGHT) y=(HEIGHT - 6.0) text-anchor="end" { "now (" (clock(series.start_of(last))) ")" }
                text.axis.unit x="2" y="12" { (unit) }
                (marks)
            }
            ul.legend { (legend) }
        }
    }
}

/// Attempts per minute, stacked by outcome.
pub fn outcomes(series: &Series) -> Markup {
    let per_minute = series.range.minutes_per_bucket();
    let max_rate = series
        .buckets
        .iter()
        .map(|b| b.total() as f64 / per_minute)
        .fold(0.0, f64::max);
    let plot = Plot::new(series, max_rate);
    let bar = (plot.slot * 0.8).max(1.0);
    let total = series.total();
    let summary = format!(
        "{} attempts in the {}: {} delivered, {} answered with an error status, {} without an answer",
        total.total(),
        series.range.label.to_lowercase(),
        total.delivered,
        total.http_error,
        total.no_response
    );
    let marks = html! {
        @for (i, b) in series.buckets.iter().enumerate() {
            @if b.total() > 0 {
                @let x = plot.x(i) + (plot.slot - bar) / 2.0;
                @let ok_h = plot.height(b.delivered as f64 / per_minute);
                @let http_h = plot.height(b.http_error as f64 / per_minute);
                @let none_h = plot.height(b.no_response as f64 / per_minute);
                @let base = plot.y(0.0);
                g {
                    title {
                        (clock(series.start_of(i))) " UTC — " (b.delivered) " delivered, "
                        (b.http_error) " error status, " (b.no_response) " no answer"
                    }
                    rect.delivered x=(x) width=(bar) y=(base - ok_h) height=(ok_h) {}
                    rect.http-error x=(x) width=(bar) y=(base - ok_h - http_h) height=(http_h) {}
                    rect.no-response x=(x) width=(bar) y=(base - ok_h - http_h - none_h) height=(none_h) {}
                }
            }
        }
    };
    let legend = html! {
        li { span.swatch.delivered {} "Delivered (" (total.delivered) ")" }
        li { span.swatch.http-error {} "Error status (" (total.http_error) ")" }
        li { span.swatch.no-response {} "No answer: timeout, connection, DNS, TLS (" (total.no_response) ")" }
    };
    let caption = "Delivery attempts per minute, by outcome";
    chart(caption, &summary, series, &plot, "per min", marks, legend)
}

/// Attempt latency p50 and p99 per bucket.
pub fn latency(series: &Series) -> Markup {
    let quantile =
        |q: f64| -> Vec<Option<i64>> { series.buckets.iter().map(|b| percentile(&b.latency, q)).collect() };
    let (p50, p99) = (quantile(0.50), quantile(0.99));
    let max = p99.iter().flatten().copied().max().unwrap_or(0);
    let plot = Plot::new(series, max as f64);
    let point = |i: usize, v: i64| (plot.x(i) + plot.slot / 2.0, plot.y(v as f64));
    // A path that lifts the pen across buckets without attempts.
    let path = |values: &[Option<i64>]| {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => {
                    let (x, y) = point(i, *v);
                    d.push_str(&format!("{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" }));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        d
    };
    let total = series.total();
    let (all_p50, all_p99) = (
        latency_label(percentile(&total.latency, 0.50)),
        latency_label(percentile(&total.latency, 0.99)),
    );
    let summary = format!(
        "Attempt latency over the {}: p50 {all_p50}, p99 {all_p99}",
        series.range.label.to_lowercase(),
    );
    let marks = html! {
        path.p99 d=(path(&p99)) {}
        path.p50 d=(path(&p50)) {}
        @for (i, (a, b)) in p50.iter().zip(&p99).enumerate() {
            @if let (Some(a), Some(b)) = (a, b) {
                @let (x, y50) = point(i, *a);
                @let (_, y99) = point(i, *b);
                g {
                    title { (clock(series.start_of(i))) " UTC — p50 " (latency_label(Some(*a))) ", p99 " (latency_label(Some(*b))) }
                    circle.p99 cx=(x) cy=(y99) r="2.5" {}
                    circle.p50 cx=(x) cy=(y50) r="2.5" {}
                }
            }
        }
    };
    let legend = html! {
        li { span.swatch.p50 {} "p50 " (all_p50) }
        li { span.swatch.p99 {} "p99 " (all_p99) }
    };
    chart(
        "Attempt latency, p50 and p99",
        &summary,
        series,
        &plot,
        "ms",
        marks,
        legend,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(bucket: i64, outcome: AttemptOutcome, latency_class: usize, count: u64) -> AttemptCount {
        AttemptCount {
            bucket,
            outcome,
            latency_class,
            count,
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram_classes() {
        let mut histogram = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        histogram[1] = 98; // < 2 ms
        histogram[10] = 2; // < 20 ms
        assert_eq!(percentile(&histogram, 0.50), Some(2));
        assert_eq!(percentile(&histogram, 0.99), Some(20));
        assert_eq!(percentile(&[0; 3], 0.5), None);
    }

    #[test]
    fn counts_land_in_their_buckets_and_out_of_range_ones_are_dropped() {
        let series = Series::new(
            HOUR,
            0,
            &[
                count(0, AttemptOutcome::Delivered, 0, 5),
                count(0, AttemptOutcome::HttpError, 3, 2),
                count(59, AttemptOutcome::NoResponse, 42, 1),
                count(60, AttemptOutcome::Delivered, 0, 100),
            ],
        );
        assert_eq!(series.buckets.len(), 60);
        assert_eq!(series.buckets[0].total(), 7);
        assert_eq!(series.buckets[59].no_response, 1);
        assert_eq!(series.total().total(), 8);
    }

    #[test]
    fn the_window_ends_with_the_current_bucket() {
        let now = 10 * 60_000 + 30_000;
        let since = HOUR.since(now);
        assert_eq!(since + 59 * 60_000, 10 * 60_000);
    }

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
    }
}
