//! Inference: a model's logits turned into per-scan predictions.

use crate::FastBackend;

use super::TrainError;
use crate::ClassificationModel3D;
use crate::data::NormalizedScans;
use crate::metrics::Prediction;

/// The model's predictions on `data`, in inference mode (running statistics, no dropout).
pub fn predict<B: FastBackend>(
    model: &ClassificationModel3D<B>,
    data: NormalizedScans<'_>,
    batch_size: usize,
    device: &B::Device,
) -> Result<Vec<Prediction>, TrainError> {
    let mut out = Vec::with_capacity(data.len());
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch_size.max(1)) {
        let batch = data.batch(chunk)?;
        let labels = batch.labels.clone();
        let (x, _) = batch.into_tensors::<B>(device);
        model.check_input(x.dims())?;
        let logits = model.forward_eval(x);
        out.extend(logits_to_predictions(logits.into_data(), &labels)?);
    }
    Ok(out)
}

pub(super) fn logits_to_predictions(
    data: burn::tensor::TensorData,
    labels: &[u8],
) -> Result<Vec<Prediction>, TrainError> {
    let values: Vec<f32> = data
        .convert::<f32>()
        .to_vec()
        .map_err(|e| TrainError::Run(format!("cannot read the network's output: {e:?}")))?;
    if values.len() != 2 * labels.len() {
        return Err(TrainError::Run(format!(
            "the network gave {} outputs for {} scans, expected 2 logits per scan",
            values.len(),
            labels.len()
        )));
    }
    Ok(labels
        .iter()
        .enumerate()
        .map(|(i, &l)| Prediction::from_logits(l, [values[2 * i], values[2 * i + 1]]))
        .collect())
}
