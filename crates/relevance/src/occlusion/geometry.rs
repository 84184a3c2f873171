//! Where the cubes of sliding occlusion go, and how their drops are spread back over the input.

use std::ops::Range;

use adni_data::atlas::zoom_index_map;

use super::host::Box3;
use crate::{RelevanceError, Result};

/// The cubes of sliding occlusion on one input grid, as the original placed them.
///
/// Per spatial axis of size `S`, the centres are `0, stride, 2·stride, … < S` (`⌈S / stride⌉`
/// of them) and the cube of centre `c` covers the voxels `[c − size/2, c + size/2)` clipped to
/// `[0, S)`: a side of `2·⌊size/2⌋` voxels (an odd `size` loses one), halved at the low border.
/// Cubes are numbered in C order over the grid of centres (first spatial axis slowest), the
/// order of the original's nested loops and of its coarse relevance array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcclusionGrid {
    rank: usize,
    /// Input grid, with a leading 1 for 2D inputs.
    dims: [usize; 3],
    size: usize,
    stride: usize,
    /// Centres per axis (1 on the padding axis of 2D inputs).
    counts: [usize; 3],
}

impl OcclusionGrid {
    /// The cubes of side `2·⌊size/2⌋` every `stride` voxels on a grid of 2 or 3 spatial axes.
    ///
    /// Errors: `size` < 2 (the cube would be empty), `stride` 0, a rank other than 2 or 3, or an
    /// axis of size 0.
    pub fn new(spatial: &[usize], size: usize, stride: usize) -> Result<Self> {
        check_size_stride(size, stride)?;
        let rank = spatial.len();
        if !(2..=3).contains(&rank) || spatial.contains(&0) {
            return Err(RelevanceError::Shape {
                found: spatial.to_vec(),
                expected: "a spatial grid of 2 or 3 axes, each at least 1 voxel".into(),
            });
        }
        let mut dims = [1; 3];
        dims[3 - rank..].copy_from_slice(spatial);
        let counts = dims.map(|s| s.div_ceil(stride));
        Ok(OcclusionGrid { rank, dims, size, stride, counts })
    }

    /// The spatial grid the cubes lie on.
    pub fn spatial(&self) -> &[usize] {
        &self.dims[3 - self.rank..]
    }

    /// The grid of centres (the coarse relevance array of the original), per spatial axis.
    pub fn shape(&self) -> Vec<usize> {
        self.counts[3 - self.rank..].to_vec()
    }

    /// Number of cubes (one forward pass each, unless skipped).
    pub fn len(&self) -> usize {
        self.counts.iter().product()
    }

    /// Whether there is no cube (never true for a grid built by [`OcclusionGrid::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `size` parameter.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The `stride` parameter.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Per spatial axis, the voxels at the high border that no cube covers: the last cube ends
    /// at `c_last + size/2`, short of the axis end whenever the axis is about a multiple of the
    /// stride and the stride is not below the cube side (40 voxels, size and stride 8: the last
    /// 4). The original places its cubes the same way. With [`super::Spread::Mean`] these voxels
    /// read 0; with [`super::Spread::Nearest`] they take the drop of the nearest centre, whose
    /// cube never covered them.
    pub fn uncovered_border(&self) -> Vec<usize> {
        let half = self.size / 2;
        let uncovered: [usize; 3] = std::array::from_fn(|a| {
            let end = (self.counts[a] - 1) * self.stride + half;
            self.dims[a].saturating_sub(end)
        });
        uncovered[3 - self.rank..].to_vec()
    }

    /// The centre of cube `index` (`index < len()`), per spatial axis.
    pub fn centre(&self, index: usize) -> Vec<usize> {
        self.centre3(index)[3 - self.rank..].to_vec()
    }

    /// The voxels of cube `index` (`index < len()`), a half-open range per spatial axis.
    pub fn cube(&self, index: usize) -> Vec<Range<usize>> {
        let b = self.cube3(index);
        (3 - self.rank..3).map(|a| b.lo[a]..b.hi[a]).collect()
    }

    pub(crate) fn dims3(&self) -> [usize; 3] {
        self.dims
    }

    fn centre3(&self, index: usize) -> [usize; 3] {
        let [_, n1, n2] = self.counts;
        [index / (n1 * n2), (index / n2) % n1, index % n2].map(|i| i * self.stride)
    }

    pub(crate) fn cube3(&self, index: usize) -> Box3 {
        let half = self.size / 2;
        let c = self.centre3(index);
        Box3 { lo: c.map(|c| c.saturating_sub(half)), hi: [0, 1, 2].map(|a| (c[a] + half).min(self.dims[a])) }
    }

    /// Per axis and voxel, the half-open range of centre indices whose cube covers the voxel.
    fn covering(&self) -> [Vec<(usize, usize)>; 3] {
        let half = self.size / 2;
        [0, 1, 2].map(|a| {
            (0..self.dims[a])
                .map(|v| {
                    // c covers v ⇔ c − half ≤ v < c + half ⇔ v − half < c ≤ v + half.
                    let first = (v + 1).saturating_sub(half).div_ceil(self.stride);
                    let end = ((v + half) / self.stride + 1).min(self.counts[a]);
                    (first, end.max(first))
                })
                .collect()
        })
    }

    /// The original's spreading: the coarse array of drops (one per cube, C order) resized to
    /// the input grid by nearest-neighbour zoom, as `scipy.ndimage.zoom(order=0)`
    /// ([`zoom_index_map`]). Returns the voxel values in C order.
    pub(crate) fn spread_nearest(&self, drops: &[f32]) -> Vec<f32> {
        let maps = [0, 1, 2].map(|a| zoom_index_map(self.counts[a], self.dims[a]));
        let [_, n1, n2] = self.counts;
        let mut out = Vec::with_capacity(self.dims.iter().product());
        for &i in &maps[0] {
            for &j in &maps[1] {
                let row = (i * n1 + j) * n2;
                out.extend(maps[2].iter().map(|&k| drops[row + k]));
            }
        }
        out
    }

    /// Every voxel gets the mean drop of the cubes that cover it (0 where none does: a stride
    /// larger than the cube side leaves gaps, and the high border may be uncovered,
    /// [`Self::uncovered_border`]). The cubes form a product grid, so the cubes
    /// covering a voxel are a box of the coarse array: the sum comes from its 3D prefix sums.
    pub(crate) fn spread_mean(&self, drops: &[f32]) -> Vec<f32> {
        let [n0, n1, n2] = self.counts;
        let (s1, s2) = ((n1 + 1) * (n2 + 1), n2 + 1);
        let mut prefix = vec![0.0f64; (n0 + 1) * s1];
        for i in 0..n0 {
            for j in 0..n1 {
                for k in 0..n2 {
                    let at = |a: usize, b: usize, c: usize| a * s1 + b * s2 + c;
                    prefix[at(i + 1, j + 1, k + 1)] = f64::from(drops[(i * n1 + j) * n2 + k])
                        + prefix[at(i, j + 1, k + 1)]
                        + prefix[at(i + 1, j, k + 1)]
                        + prefix[at(i + 1, j + 1, k)]
                        - prefix[at(i, j, k + 1)]
                        - prefix[at(i, j + 1, k)]
                        - prefix[at(i + 1, j, k)]
                        + prefix[at(i, j, k)];
                }
            }
        }
        let covering = self.covering();
        let mut out = Vec::with_capacity(self.dims.iter().product());
        for &(a0, b0) in &covering[0] {
            for &(a1, b1) in &covering[1] {
                out.extend(covering[2].iter().map(|&(a2, b2)| {
                    let count = (b0 - a0) * (b1 - a1) * (b2 - a2);
                    if count == 0 {
                        return 0.0;
                    }
                    let p = |a: usize, b: usize, c: usize| prefix[a * s1 + b * s2 + c];
                    let sum = p(b0, b1, b2) - p(a0, b1, b2) - p(b0, a1, b2) - p(b0, b1, a2)
                        + p(a0, a1, b2)
                        + p(a0, b1, a2)
                        + p(b0, a1, a2)
                        - p(a0, a1, a2);
                    (sum / count as f64).max(0.0) as f32
                }));
            }
        }
        out
    }
}

/// The checks of `size` and `stride` shared by the grid and the config.
pub(crate) fn check_size_stride(size: usize, stride: usize) -> Result<()> {
    if size < 2 {
        return Err(RelevanceError::Parameter {
            name: "size",
            message: format!("is {size}; expected at least 2 (the cube side is 2·⌊size/2⌋ voxels)"),
        });
    }
    if stride == 0 {
        return Err(RelevanceError::Parameter {
            name: "stride",
            message: "is 0; expected at least 1 voxel between cube centres".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_border_left_uncovered_is_reported() {
        // 40 voxels, cubes of 8 every 8: centres 0..=32, the last covers [28, 36).
        let g = OcclusionGrid::new(&[40, 48, 41], 8, 8).unwrap();
        assert_eq!(g.uncovered_border(), vec![4, 4, 0]);
        // The default 2 mm grid at size and stride 6: centres up to 96, covering to 99 > 97.
        let g = OcclusionGrid::new(&[97, 115, 97], 6, 6).unwrap();
        assert_eq!(g.uncovered_border(), vec![0, 0, 0]);
        let g = OcclusionGrid::new(&[20, 20], 4, 2).unwrap();
        assert_eq!(g.uncovered_border(), vec![0, 0]);
    }
}
