//! Learning curves as PNG, drawn with plotters into an RGB buffer (pure Rust; the DejaVu Sans font is embedded,
//! licence in `assets/DejaVuSans.LICENSE`).

use crate::io::{RenderError, write_png};
use image::RgbImage;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let _ =
            plotters::style::register_font("sans-serif", FontStyle::Normal, include_bytes!("../assets/DejaVuSans.ttf"));
    });
}

/// 1500000 → "1.5M", 50000 → "50k".
fn human(x: f64) -> String {
    match x.abs() {
        a if a >= 1e6 => format!("{}M", x / 1e6),
        a if a >= 1e3 => format!("{}k", x / 1e3),
        _ => format!("{x}"),
    }
}

/// Mean of the last `window` values at each point (the first points average what there is).
pub fn moving_average(values: &[f64], window: usize) -> Vec<f64> {
    let w = window.max(1);
    let mut sum = 0.0;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            sum += v;
            if i >= w {
                sum -= values[i - w];
            }
            sum / (i + 1).min(w) as f64
        })
        .collect()
}

/// Draws a 900×500 chart with `draw` (on a white canvas; errors as text) and writes it as a PNG.
fn chart_png(
    path: &Path,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<(), String>,
) -> Result<(), RenderError> {
    register_font();
    let (w, h) = (900u32, 500u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let enc = |e: String| RenderError::Encode { path: path.to_path_buf(), message: e };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| enc(e.to_string()))?;
        draw(&root).map_err(enc)?;
        root.present().map_err(|e| enc(e.to_string()))?;
    }
    let img = RgbImage::from_raw(w, h, buf).expect("buffer matches the canvas");
    write_png(path, &img)
}

/// Draws episode returns against environment steps: each episode as a faint point, the moving average of
/// `window` episodes as a line. Writes a 900×500 PNG.
pub fn learning_curve(
    path: &Path,
    title: &str,
    steps: &[f64],
    returns: &[f64],
    window: usize,
) -> Result<(), RenderError> {
    chart_png(path, |root| {
        let x_max = steps.iter().cloned().fold(1.0, f64::max);
        let (lo, hi) = returns.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &r| (a.min(r), b.max(r)));
        let (lo, hi) = if lo.is_finite() { (lo.min(0.0), hi.max(lo + 1.0)) } else { (0.0, 1.0) };
        let pad = (hi - lo) * 0.05;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("environment steps")
            .x_label_formatter(&|x| human(*x))
            .y_label_formatter(&|y| format!("{y}"))
            .y_desc("episode return")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        let faint = RGBColor(150, 170, 210);
        chart
            .draw_series(steps.iter().zip(returns).map(|(&x, &y)| Circle::new((x, y), 1, faint.filled())))
            .map_err(|e| e.to_string())?;
        let smooth = moving_average(returns, window);
        chart
            .draw_series(LineSeries::new(steps.iter().cloned().zip(smooth), RGBColor(200, 60, 40).stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(format!("mean of last {window} episodes"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(200, 60, 40).stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Named curves on one chart (a legend in the corner): `series` are (name, x values, y values). Writes a 900×500
/// PNG.
pub fn lines(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    series: &[(String, Vec<f64>, Vec<f64>)],
) -> Result<(), RenderError> {
    chart_png(path, |root| {
        let all_x = series.iter().flat_map(|s| s.1.iter().copied());
        let (x_lo, x_hi) = all_x.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
        let all_y = series.iter().flat_map(|s| s.2.iter().copied()).filter(|y| y.is_finite());
        let (y_lo, y_hi) = all_y.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
        let (x_lo, x_hi) = if x_lo.is_finite() && x_hi > x_lo { (x_lo, x_hi) } else { (0.0, 1.0) };
        let (y_lo, y_hi) = if y_lo.is_finite() { (y_lo, y_hi.max(y_lo + 1e-6)) } else { (0.0, 1.0) };
        let pad = (y_hi - y_lo) * 0.05;
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_lo..x_hi, (y_lo - pad)..(y_hi + pad))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (name, xs, ys)) in series.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            let style = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(xs.iter().copied().zip(ys.iter().copied()), style))
                .map_err(|e| e.to_string())?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// The picture with `lines` of text in a dark strip above it (each line 14 px high): the label of a grid panel.
pub fn captioned(img: &RgbImage, lines: &[String]) -> RgbImage {
    register_font();
    let (w, h) = img.dimensions();
    let strip = 16 * lines.len() as u32 + 4;
    let mut buf = vec![24u8; (w * (h + strip) * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h + strip)).into_drawing_area();
        for (i, line) in lines.iter().enumerate() {
            // Drawing text can only fail for a missing font, and the font is embedded: leave the strip blank then.
            let _ = root.draw_text(line, &("sans-serif", 13).into_font().color(&WHITE), (3, 2 + 16 * i as i32));
        }
    }
    let mut out = RgbImage::from_raw(w, h + strip, buf).expect("a buffer of the picture's size");
    image::imageops::replace(&mut out, img, 0, strip as i64);
    out
}

/// A column of labelled feature cells coloured by their signed value (red positive, blue negative, scaled by the
/// largest magnitude) with the value printed beside: an attribution over a vector observation.
pub fn feature_column(names: &[String], values: &[f32], title: &str) -> RgbImage {
    register_font();
    let (w, row) = (380u32, 30u32);
    let h = 24 + row * values.len() as u32 + 6;
    let top = values.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let mut buf = vec![24u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let style = ("sans-serif", 13).into_font().color(&WHITE);
        let _ = root.draw_text(title, &style, (4, 4));
        for (i, v) in values.iter().enumerate() {
            let y = 24 + row as i32 * i as i32;
            let [r, g, b] = crate::heatmap::Colormap::RedBlue.at((v / top + 1.0) / 2.0);
            let _ = root.draw(&Rectangle::new([(4, y), (64, y + row as i32 - 4)], RGBColor(r, g, b).filled()));
            let name = names.get(i).cloned().unwrap_or_else(|| format!("x{i}"));
            let _ = root.draw_text(&format!("{name}: {v:+.4}"), &style, (72, y + 7));
        }
    }
    RgbImage::from_raw(w, h, buf).expect("a buffer of the picture's size")
}

/// A horizontal colour scale `w` pixels wide with its two ends labelled: the key under a row of heat maps.
pub fn colour_scale(w: u32, cmap: crate::heatmap::Colormap, low: &str, high: &str) -> RgbImage {
    let (bar_h, w) = (10u32, w.max(40));
    let mut bar = RgbImage::new(w, bar_h);
    for (x, _, p) in bar.enumerate_pixels_mut() {
        *p = image::Rgb(cmap.at(x as f32 / (w - 1) as f32));
    }
    register_font();
    let h = bar_h + 16;
    let mut buf = vec![24u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let style = ("sans-serif", 12).into_font().color(&WHITE);
        let _ = root.draw_text(low, &style, (2, bar_h as i32 + 2));
        let right = w as i32 - 7 * high.chars().count() as i32 - 2;
        let _ = root.draw_text(high, &style, (right.max(w as i32 / 2), bar_h as i32 + 2));
    }
    let mut out = RgbImage::from_raw(w, h, buf).expect("a buffer of the scale's size");
    image::imageops::replace(&mut out, &bar, 0, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_labels_are_short() {
        assert_eq!((human(1_500_000.0), human(50_000.0), human(12.0)), ("1.5M".into(), "50k".into(), "12".into()));
    }

    #[test]
    fn moving_average_by_hand() {
        assert_eq!(moving_average(&[1.0, 3.0, 5.0, 7.0], 2), vec![1.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn draws_a_curve_with_the_line_where_the_returns_are() {
        let path = std::env::temp_dir().join(format!("xrl-curve-{}.png", std::process::id()));
        let steps: Vec<f64> = (0..200).map(|i| i as f64 * 100.0).collect();
        let returns: Vec<f64> = (0..200).map(|i| i as f64 / 10.0).collect();
        learning_curve(&path, "test", &steps, &returns, 10).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (900, 500));
        // Red line pixels exist, more of them on the right half at the top than at the bottom (rising curve).
        let red = |x0: u32, x1: u32, y0: u32, y1: u32| {
            (x0..x1)
                .flat_map(|x| (y0..y1).map(move |y| (x, y)))
                .filter(|&(x, y)| {
                    let p = img.get_pixel(x, y).0;
                    p[0] > 150 && p[1] < 110 && p[2] < 100
                })
                .count()
        };
        assert!(red(450, 890, 0, 250) > 50, "the rising line reaches the upper right");
        assert!(red(450, 890, 0, 250) > red(450, 890, 250, 440));
        std::fs::remove_file(&path).unwrap();
    }
}
