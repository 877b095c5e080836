use serde::{Deserialize, Serialize};

/// What happened in one optimizer step: one line of `metrics.jsonl`.
/// Optional fields are omitted from the JSON when absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based optimizer step.
    pub step: u64,
    /// Mean cross-entropy over the step's global batch.
    pub loss: f64,
    /// Learning rate used by this step.
    pub lr: f64,
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f64,
    /// Tokens trained on so far, this step included (all ranks).
    pub tokens: u64,
    /// Throughput of this step (all ranks).
    pub tokens_per_s: f64,
    /// Training wall-clock seconds since the run started (continued on resume).
    pub elapsed_s: f64,
    /// Wall-clock seconds of this step.
    pub step_time_s: f64,
    /// Validation loss, on steps that evaluate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// Achieved FLOP/s of this step over the hardware peak, in `[0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfu: Option<f64>,
    /// Bytes this rank sent in collectives during the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_bytes: Option<u64>,
    /// [`StepRecord::comm_bytes`] per group kind (`tp`, `cp`, `dp-cp`), for
    /// the groups with more than one rank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_bytes_by_group: Option<std::collections::BTreeMap<String, u64>>,
    /// Seconds this rank waited on communication during the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm_wait_s: Option<f64>,
    /// Peak resident memory of the process so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Peak device memory of rank 0's device so far (devices other than the
    /// host, e.g. `kernels.device = "cuda"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_peak_bytes: Option<u64>,
    /// Bytes of `f32` buffers rank 0's device copied to or from the host
    /// during the step (devices other than the host): 0 when the step,
    /// exchanges included, stayed on the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_host_bytes: Option<u64>,
    /// The epoch (from 0) of the step's first sequence, for file data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// On the first step after a resume that changed the run's meaning
    /// (`train.allow_config_change`): each change, `key: old → new`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_changes: Option<Vec<String>>,
}
