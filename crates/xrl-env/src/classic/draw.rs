//! A small vector canvas over tiny-skia for the classic-control pictures: world coordinates with y up.

use image::RgbImage;
use tiny_skia::{Color, FillRule, Paint, PathBuilder, Pixmap, Stroke, Transform};

pub struct Canvas {
    pixmap: Pixmap,
}

pub type Rgb = (u8, u8, u8);

fn paint(c: Rgb) -> Paint<'static> {
    let mut p = Paint::default();
    p.set_color_rgba8(c.0, c.1, c.2, 255);
    p.anti_alias = true;
    p
}

impl Canvas {
    /// A white canvas of `w`×`h` pixels; coordinates are pixels with the origin at the bottom left.
    pub fn new(w: u32, h: u32) -> Self {
        let mut pixmap = Pixmap::new(w, h).expect("canvas size is non-zero");
        pixmap.fill(Color::WHITE);
        Canvas { pixmap }
    }

    fn flip(&self, y: f32) -> f32 {
        self.pixmap.height() as f32 - y
    }

    /// A path through `pts` (y up), closed for filling.
    fn path(&self, pts: &[(f32, f32)], close: bool) -> Option<tiny_skia::Path> {
        let mut pb = PathBuilder::new();
        for (i, &(x, y)) in pts.iter().enumerate() {
            let y = self.flip(y);
            if i == 0 { pb.move_to(x, y) } else { pb.line_to(x, y) }
        }
        if close {
            pb.close();
        }
        pb.finish()
    }

    /// A filled polygon through `pts` (y up).
    pub fn polygon(&mut self, pts: &[(f32, f32)], c: Rgb) {
        if let Some(path) = self.path(pts, true) {
            self.pixmap.fill_path(&path, &paint(c), FillRule::Winding, Transform::identity(), None);
        }
    }

    /// A rectangle of width `w` and length `len` starting at `(x, y)` and pointing along `angle` (radians from +x).
    pub fn bar(&mut self, (x, y): (f32, f32), angle: f32, len: f32, w: f32, c: Rgb) {
        let (s, co) = angle.sin_cos();
        let (nx, ny) = (-s * w / 2.0, co * w / 2.0);
        let (ex, ey) = (x + co * len, y + s * len);
        self.polygon(&[(x + nx, y + ny), (ex + nx, ey + ny), (ex - nx, ey - ny), (x - nx, y - ny)], c);
    }

    pub fn circle(&mut self, (x, y): (f32, f32), r: f32, c: Rgb) {
        if let Some(path) = PathBuilder::from_circle(x, self.flip(y), r) {
            self.pixmap.fill_path(&path, &paint(c), FillRule::Winding, Transform::identity(), None);
        }
    }

    pub fn polyline(&mut self, pts: &[(f32, f32)], width: f32, c: Rgb) {
        if let Some(path) = self.path(pts, false) {
            let stroke = Stroke { width, ..Stroke::default() };
            self.pixmap.stroke_path(&path, &paint(c), &stroke, Transform::identity(), None);
        }
    }

    pub fn into_image(self) -> RgbImage {
        let (w, h) = (self.pixmap.width(), self.pixmap.height());
        let rgb = self.pixmap.data().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        RgbImage::from_raw(w, h, rgb).expect("buffer matches the canvas size")
    }
}
