//! Plain hand-written SVG line charts: deterministic text, no plotting dependency.

use std::fmt::Write as _;

/// One line of a chart: a label and its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points (x, y), drawn in order.
    pub points: Vec<(f64, f64)>,
}

/// A chart description.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// Logarithmic x axis (base 10).
    pub log_x: bool,
    /// Draw the line as steps (for CDFs and per-second buckets).
    pub steps: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// Optional vertical marker (x, label), e.g. T_min.
    pub marker: Option<(f64, String)>,
}

const W: f64 = 720.0;
const H: f64 = 440.0;
const L: f64 = 80.0;
const R: f64 = 180.0;
const T: f64 = 40.0;
const B: f64 = 60.0;
const COLOURS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// Renders `chart` as an SVG document.
pub fn svg(chart: &Chart<'_>) -> String {
    let tx = |x: f64| if chart.log_x { x.max(1e-12).log10() } else { x };
    let pts = chart.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(tx(x));
        x1 = x1.max(tx(x));
        y1 = y1.max(y);
    }
    if let Some((m, _)) = &chart.marker {
        x0 = x0.min(tx(*m));
        x1 = x1.max(tx(*m));
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if !chart.log_x {
        x0 = x0.min(0.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= 0.0 {
        y1 = 1.0;
    }
    y1 *= 1.05;
    let px = |x: f64| L + (tx(x) - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| H - B - y / y1 * (H - T - B);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        (W - R + L) / 2.0,
        esc(chart.title)
    );
    // Axes and ticks.
    let _ = writeln!(s, "<path d=\"M{L} {T} V{} H{}\" fill=\"none\" stroke=\"black\"/>", H - B, W - R);
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let xv = x0 + f * (x1 - x0);
        let label = if chart.log_x { fmt_num(10f64.powf(xv)) } else { fmt_num(xv) };
        let x = L + f * (W - L - R);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"black\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            H - B,
            H - B + 5.0,
            H - B + 20.0
        );
        let yv = f * y1;
        let y = py(yv);
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{L}\" y2=\"{y:.1}\" stroke=\"black\"/><line x1=\"{L}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            L - 5.0,
            W - R,
            L - 8.0,
            y + 4.0,
            fmt_num(yv)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n<text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">{}</text>",
        (W - R + L) / 2.0,
        H - 15.0,
        esc(chart.x_label),
        (H - B + T) / 2.0,
        (H - B + T) / 2.0,
        esc(chart.y_label)
    );
    if let Some((m, label)) = &chart.marker {
        let x = px(*m);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{T}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{}\" fill=\"#555\">{}</text>",
            H - B,
            x + 4.0,
            T + 12.0,
            esc(label)
        );
    }
    for (i, series) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut d = String::new();
        let mut prev: Option<(f64, f64)> = None;
        for &(x, y) in &series.points {
            let (x, y) = (px(x), py(y));
            match prev {
                None => {
                    let _ = write!(d, "M{x:.1} {y:.1}");
                }
                Some(_) if chart.steps => {
                    let _ = write!(d, " H{x:.1} V{y:.1}");
                }
                Some(_) => {
                    let _ = write!(d, " L{x:.1} {y:.1}");
                }
            }
            prev = Some((x, y));
        }
        let _ = writeln!(s, "<path d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\"/>");
        if series.points.len() <= 30 {
            for &(x, y) in &series.points {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>",
                    px(x),
                    py(y)
                );
            }
        }
        let ly = T + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"14\" height=\"4\" fill=\"{colour}\"/><text x=\"{}\" y=\"{:.1}\">{}</text>",
            W - R + 15.0,
            ly,
            W - R + 34.0,
            ly + 5.0,
            esc(&series.label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// A compact tick label: 3 significant digits, SI-ish suffixes for big numbers.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    let (v, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    format!("{s}{suffix}")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_well_formed_and_escaped() {
        let chart = Chart {
            title: "a <b> & c",
            x_label: "x",
            y_label: "y",
            log_x: true,
            steps: false,
            series: vec![Series { label: "s1".into(), points: vec![(1e3, 1.0), (1e6, 2.0)] }],
            marker: Some((1e4, "T_min".into())),
        };
        let s = svg(&chart);
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("a &lt;b&gt; &amp; c"));
        assert!(s.contains("<path d=\"M"));
        assert_eq!(s, svg(&chart));
        assert_eq!(fmt_num(250_000.0), "250k");
        assert_eq!(fmt_num(1.5), "1.50");
    }
}
