//! Small numerical tools for the generator: separable Gaussian blur, smoothed region indicators
//! stored in their bounding boxes, and trilinear sampling of C-ordered volumes.

/// Blurs a C-ordered `[i, j, k]` volume in place with a separable Gaussian of `sigma` voxels per
/// axis (kernel cut at 3σ, zero outside the volume). A σ of 0 leaves that axis alone.
pub(crate) fn blur_in_place(data: &mut [f32], dims: [usize; 3], sigma: [f64; 3]) {
    let strides = [dims[1] * dims[2], dims[2], 1];
    for axis in 0..3 {
        let s = sigma[axis];
        if s <= 0.0 || dims[axis] < 2 {
            continue;
        }
        let radius = (3.0 * s).ceil() as usize;
        let mut kernel: Vec<f32> = (0..=2 * radius)
            .map(|t| {
                let x = t as f64 - radius as f64;
                (-(x * x) / (2.0 * s * s)).exp() as f32
            })
            .collect();
        let sum: f32 = kernel.iter().sum();
        kernel.iter_mut().for_each(|w| *w /= sum);
        let n = dims[axis];
        let stride = strides[axis];
        let mut line = vec![0f32; n];
        let mut out = vec![0f32; n];
        let others: Vec<usize> = (0..3).filter(|&a| a != axis).collect();
        for p in 0..dims[others[0]] {
            for q in 0..dims[others[1]] {
                let base = p * strides[others[0]] + q * strides[others[1]];
                for (t, v) in line.iter_mut().enumerate() {
                    *v = data[base + t * stride];
                }
                if line.iter().all(|&v| v == 0.0) {
                    continue;
                }
                for (t, o) in out.iter_mut().enumerate() {
                    let lo = t.saturating_sub(radius);
                    let hi = (t + radius).min(n - 1);
                    let mut acc = 0f32;
                    for u in lo..=hi {
                        acc += kernel[u + radius - t] * line[u];
                    }
                    *o = acc;
                }
                for (t, &v) in out.iter().enumerate() {
                    data[base + t * stride] = v;
                }
            }
        }
    }
}

/// A smooth scalar field that is zero outside an axis-aligned box of a larger grid.
#[derive(Debug, Clone)]
pub(crate) struct BoxField {
    /// First voxel of the box in the full grid.
    pub origin: [usize; 3],
    /// Box extent in voxels.
    pub dims: [usize; 3],
    /// Values, C order over the box.
    pub data: Vec<f32>,
}

impl BoxField {
    /// The smoothed indicator of the voxels of `labels` equal to `label`: blurred by `sigma`
    /// voxels and scaled so that its maximum inside the region is 1 (the scale is capped at 3,
    /// so a structure thinner than the blur is not inflated without bound). `None` when the
    /// label has no voxels.
    pub fn smoothed_indicator(
        labels: &[i32],
        grid_dims: [usize; 3],
        bbox: ([usize; 3], [usize; 3]),
        label: i32,
        sigma: [f64; 3],
    ) -> Option<BoxField> {
        let (lo, hi) = bbox;
        if (0..3).any(|a| lo[a] > hi[a]) {
            return None;
        }
        let mut origin = [0usize; 3];
        let mut dims = [0usize; 3];
        for a in 0..3 {
            let pad = (3.0 * sigma[a]).ceil() as usize + 2;
            origin[a] = lo[a].saturating_sub(pad);
            let end = (hi[a] + pad + 1).min(grid_dims[a]);
            dims[a] = end - origin[a];
        }
        let gs = [grid_dims[1] * grid_dims[2], grid_dims[2]];
        let mut data = vec![0f32; dims[0] * dims[1] * dims[2]];
        let mut inside = Vec::new();
        for i in 0..dims[0] {
            for j in 0..dims[1] {
                for k in 0..dims[2] {
                    let g = (origin[0] + i) * gs[0] + (origin[1] + j) * gs[1] + origin[2] + k;
                    if labels[g] == label {
                        let b = (i * dims[1] + j) * dims[2] + k;
                        data[b] = 1.0;
                        inside.push(b);
                    }
                }
            }
        }
        blur_in_place(&mut data, dims, sigma);
        let peak = inside.iter().map(|&b| data[b]).fold(0f32, f32::max);
        if peak > 0.0 {
            let scale = (1.0 / peak).min(3.0);
            data.iter_mut().for_each(|v| *v = (*v * scale).min(1.0));
        }
        Some(BoxField { origin, dims, data })
    }

    /// Adds `coef ·` this field into the sub-grid of the full grid that starts at `origin` and
    /// spans `dims` (C order); the box must lie inside that sub-grid.
    pub fn add_into(&self, sub: &mut [f32], origin: [usize; 3], dims: [usize; 3], coef: f32) {
        if coef == 0.0 {
            return;
        }
        let o = [self.origin[0] - origin[0], self.origin[1] - origin[1], self.origin[2] - origin[2]];
        let gs = [dims[1] * dims[2], dims[2]];
        for i in 0..self.dims[0] {
            for j in 0..self.dims[1] {
                let src = (i * self.dims[1] + j) * self.dims[2];
                let dst = (o[0] + i) * gs[0] + (o[1] + j) * gs[1] + o[2];
                let row = &self.data[src..src + self.dims[2]];
                for (d, &s) in sub[dst..dst + self.dims[2]].iter_mut().zip(row) {
                    *d += coef * s;
                }
            }
        }
    }

    /// The value at full-grid voxel `p` (0 outside the box).
    #[cfg(test)]
    pub fn value_at(&self, p: [usize; 3]) -> f32 {
        if (0..3).any(|a| p[a] < self.origin[a] || p[a] >= self.origin[a] + self.dims[a]) {
            return 0.0;
        }
        let q = [p[0] - self.origin[0], p[1] - self.origin[1], p[2] - self.origin[2]];
        self.data[(q[0] * self.dims[1] + q[1]) * self.dims[2] + q[2]]
    }
}

/// Bounding boxes (inclusive lo, hi) of every label in `wanted`, in one pass over the volume.
pub(crate) fn label_bboxes(labels: &[i32], dims: [usize; 3], wanted: &[i32]) -> Vec<([usize; 3], [usize; 3])> {
    let mut boxes = vec![([usize::MAX; 3], [0usize; 3]); wanted.len()];
    let mut idx = 0usize;
    for i in 0..dims[0] {
        for j in 0..dims[1] {
            for k in 0..dims[2] {
                let l = labels[idx];
                idx += 1;
                if l == 0 {
                    continue;
                }
                if let Some(w) = wanted.iter().position(|&x| x == l) {
                    let b = &mut boxes[w];
                    for (a, v) in [i, j, k].into_iter().enumerate() {
                        b.0[a] = b.0[a].min(v);
                        b.1[a] = b.1[a].max(v);
                    }
                }
            }
        }
    }
    boxes
}

/// A C-ordered volume for fast sampling.
#[derive(Clone, Copy)]
pub(crate) struct Sampler<'a> {
    pub data: &'a [f32],
    pub dims: [usize; 3],
}

impl Sampler<'_> {
    #[inline]
    fn at(&self, i: isize, j: isize, k: isize) -> f32 {
        if i < 0 || j < 0 || k < 0 {
            return 0.0;
        }
        let (i, j, k) = (i as usize, j as usize, k as usize);
        if i >= self.dims[0] || j >= self.dims[1] || k >= self.dims[2] {
            return 0.0;
        }
        self.data[(i * self.dims[1] + j) * self.dims[2] + k]
    }

    /// The eight corner values around `p` and the fractional offsets; values outside the grid
    /// are 0.
    #[inline]
    fn corners(&self, p: [f32; 3]) -> Option<([f32; 8], [f32; 3])> {
        // Positions far outside the grid (or NaN) have no corners inside it.
        if !(p[0] > -2.0 && p[1] > -2.0 && p[2] > -2.0) {
            return None;
        }
        // floor without a libm call: truncation rounds towards 0, fix the negative side.
        let fl = p.map(|x| {
            let t = x as isize;
            if (t as f32) > x { t - 1 } else { t }
        });
        let f = [p[0] - fl[0] as f32, p[1] - fl[1] as f32, p[2] - fl[2] as f32];
        let (i, j, k) = (fl[0], fl[1], fl[2]);
        let d = self.dims;
        if i < -1 || j < -1 || k < -1 || i >= d[0] as isize || j >= d[1] as isize || k >= d[2] as isize {
            return None;
        }
        let c = if i >= 0 && j >= 0 && k >= 0 && i + 1 < d[0] as isize && j + 1 < d[1] as isize && k + 1 < d[2] as isize
        {
            let s1 = d[2];
            let s0 = d[1] * d[2];
            let b = i as usize * s0 + j as usize * s1 + k as usize;
            let v = self.data;
            [v[b], v[b + 1], v[b + s1], v[b + s1 + 1], v[b + s0], v[b + s0 + 1], v[b + s0 + s1], v[b + s0 + s1 + 1]]
        } else {
            [
                self.at(i, j, k),
                self.at(i, j, k + 1),
                self.at(i, j + 1, k),
                self.at(i, j + 1, k + 1),
                self.at(i + 1, j, k),
                self.at(i + 1, j, k + 1),
                self.at(i + 1, j + 1, k),
                self.at(i + 1, j + 1, k + 1),
            ]
        };
        Some((c, f))
    }

    /// Trilinear interpolation at voxel position `p`; 0 outside the grid.
    #[inline]
    pub fn sample(&self, p: [f32; 3]) -> f32 {
        let Some((c, f)) = self.corners(p) else { return 0.0 };
        let c00 = c[0] + f[2] * (c[1] - c[0]);
        let c01 = c[2] + f[2] * (c[3] - c[2]);
        let c10 = c[4] + f[2] * (c[5] - c[4]);
        let c11 = c[6] + f[2] * (c[7] - c[6]);
        let c0 = c00 + f[1] * (c01 - c00);
        let c1 = c10 + f[1] * (c11 - c10);
        c0 + f[0] * (c1 - c0)
    }

    /// The gradient (per voxel) of the trilinear interpolant at `p`, or `None` where all eight
    /// corners are 0 (the common case for a field with small support).
    #[inline]
    pub fn gradient(&self, p: [f32; 3]) -> Option<[f32; 3]> {
        let (c, f) = self.corners(p)?;
        if c.iter().all(|&v| v == 0.0) {
            return None;
        }
        let (fx, fy, fz) = (f[0], f[1], f[2]);
        // Corner order: index = 4·di + 2·dj + dk.
        let lerp_z = |a: f32, b: f32| a + fz * (b - a);
        let lerp_y = |a: f32, b: f32| a + fy * (b - a);
        let gx = {
            let a = lerp_y(lerp_z(c[0], c[1]), lerp_z(c[2], c[3]));
            let b = lerp_y(lerp_z(c[4], c[5]), lerp_z(c[6], c[7]));
            b - a
        };
        let gy = {
            let a0 = lerp_z(c[0], c[1]);
            let a1 = lerp_z(c[2], c[3]);
            let b0 = lerp_z(c[4], c[5]);
            let b1 = lerp_z(c[6], c[7]);
            (1.0 - fx) * (a1 - a0) + fx * (b1 - b0)
        };
        let gz = {
            let e00 = c[1] - c[0];
            let e01 = c[3] - c[2];
            let e10 = c[5] - c[4];
            let e11 = c[7] - c[6];
            let a = e00 + fy * (e01 - e00);
            let b = e10 + fy * (e11 - e10);
            a + fx * (b - a)
        };
        Some([gx, gy, gz])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_preserves_mass_away_from_borders() {
        let dims = [21, 21, 21];
        let mut v = vec![0f32; 21 * 21 * 21];
        v[(10 * 21 + 10) * 21 + 10] = 1.0;
        blur_in_place(&mut v, dims, [1.5; 3]);
        let sum: f32 = v.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "{sum}");
        // symmetric
        assert!((v[(9 * 21 + 10) * 21 + 10] - v[(11 * 21 + 10) * 21 + 10]).abs() < 1e-7);
    }

    #[test]
    fn trilinear_reproduces_linear_functions_and_their_gradient() {
        let dims = [6, 7, 8];
        let f = |i: f32, j: f32, k: f32| 2.0 * i - 3.0 * j + 0.5 * k + 1.0;
        let data: Vec<f32> = (0..6 * 7 * 8)
            .map(|n| {
                let (i, j, k) = (n / 56, (n / 8) % 7, n % 8);
                f(i as f32, j as f32, k as f32)
            })
            .collect();
        let s = Sampler { data: &data, dims };
        let p = [2.3, 4.6, 3.25];
        assert!((s.sample(p) - f(p[0], p[1], p[2])).abs() < 1e-4);
        let g = s.gradient(p).unwrap();
        assert!((g[0] - 2.0).abs() < 1e-4 && (g[1] + 3.0).abs() < 1e-4 && (g[2] - 0.5).abs() < 1e-4, "{g:?}");
        assert_eq!(s.sample([-5.0, 0.0, 0.0]), 0.0);
    }

    #[test]
    fn smoothed_indicator_peaks_at_one_inside() {
        let dims = [20, 20, 20];
        let mut labels = vec![0i32; 8000];
        for i in 6..14 {
            for j in 6..14 {
                for k in 6..14 {
                    labels[(i * 20 + j) * 20 + k] = 7;
                }
            }
        }
        let bb = label_bboxes(&labels, dims, &[7, 8]);
        assert_eq!(bb[0], ([6; 3], [13; 3]));
        assert!(bb[1].0[0] > bb[1].1[0], "absent label has an empty box");
        let f = BoxField::smoothed_indicator(&labels, dims, bb[0], 7, [1.5; 3]).unwrap();
        assert!((f.value_at([10, 10, 10]) - 1.0).abs() < 1e-3);
        assert!(f.value_at([1, 1, 1]) < 1e-3);
        assert!(BoxField::smoothed_indicator(&labels, dims, bb[1], 8, [1.5; 3]).is_none());
    }
}
