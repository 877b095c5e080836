//! The reporting rank's checkpoints on their way to the writers: written on
//! the training thread, or (`train.async_checkpoint`) as a task of the
//! context's ordered executor while training goes on, at most one in flight.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use appctx::{Executor, TaskHandle};

use super::{CheckpointData, CheckpointWriter, TrainError};
use crate::checkpoint::TrainerState;
use crate::model::ParamLayout;
use crate::optim::OptimizerState;

/// What every checkpoint of a run shares, and the writers it goes to.
struct Destination {
    layout: ParamLayout,
    /// `config.json` and the tokenizer's files.
    hf_files: Vec<(&'static str, String)>,
    writers: Vec<Arc<dyn CheckpointWriter>>,
}

impl Destination {
    /// Hands one checkpoint to every writer; the directory when one wrote it to disk.
    fn write(
        &self,
        params: &[f32],
        optimizer: &OptimizerState<'_>,
        state: &TrainerState,
    ) -> Result<Option<PathBuf>, TrainError> {
        let data = CheckpointData {
            layout: &self.layout,
            params,
            optimizer,
            state,
            hf_files: &self.hf_files,
        };
        let mut dir = None;
        for writer in &self.writers {
            let written = writer.write(&data)?;
            dir = dir.or(written);
        }
        Ok(dir)
    }
}

/// A checkpoint being written in the background.
struct Pending {
    step: u64,
    write: TaskHandle<Result<Option<PathBuf>, TrainError>>,
}

/// Checkpoints handed to the writers, in step order, and the newest one written.
pub(super) struct CheckpointQueue {
    destination: Arc<Destination>,
    /// `Some` with `train.async_checkpoint`: where the writes run.
    executor: Option<Executor>,
    pending: Option<Pending>,
    /// The newest checkpoint written: (step, directory when on disk).
    saved: Option<(u64, Option<PathBuf>)>,
}

impl CheckpointQueue {
    /// Checkpoints of `layout` with `hf_files` to `writers`, written on the
    /// calling thread (until [`write_on`](Self::write_on)).
    pub fn new(
        layout: ParamLayout,
        hf_files: Vec<(&'static str, String)>,
        writers: Vec<Arc<dyn CheckpointWriter>>,
    ) -> Self {
        CheckpointQueue {
            destination: Arc::new(Destination {
                layout,
                hf_files,
                writers,
            }),
            executor: None,
            pending: None,
            saved: None,
        }
    }

    /// Writes the next checkpoints as tasks of `executor`'s ordered thread.
    pub fn write_on(&mut self, executor: Executor) {
        self.executor = Some(executor);
    }

    /// The step of the newest checkpoint handed out (written or in flight).
    pub fn newest_step(&self) -> Option<u64> {
        match &self.pending {
            Some(pending) => Some(pending.step),
            None => self.saved.as_ref().map(|(step, _)| *step),
        }
    }

    /// Writes a checkpoint after the one in flight has finished (its error
    /// is returned here). In the background, the state is first copied
    /// unless it is owned already (gathered over a TP group), so at most one
    /// extra copy of the model and its moments exists.
    pub fn push(
        &mut self,
        params: Cow<'_, [f32]>,
        optimizer: OptimizerState<'_>,
        state: TrainerState,
    ) -> Result<(), TrainError> {
        self.wait()?;
        let step = state.step;
        let Some(executor) = &self.executor else {
            let dir = self.destination.write(&params, &optimizer, &state)?;
            self.saved = Some((step, dir));
            return Ok(());
        };
        let params = params.into_owned();
        let optimizer = OptimizerState {
            step: optimizer.step,
            slots: optimizer
                .slots
                .into_iter()
                .map(|(name, values)| (name, Cow::Owned(values.into_owned())))
                .collect(),
        };
        let destination = self.destination.clone();
        let write = executor.submit(format!("checkpoint step-{step}"), move || {
            destination.write(&params, &optimizer, &state)
        })?;
        self.pending = Some(Pending { step, write });
        Ok(())
    }

    /// Waits for the checkpoint in flight, if any; returns the newest
    /// checkpoint's directory (when one went to disk), or the write's error.
    pub fn wait(&mut self) -> Result<Option<PathBuf>, TrainError> {
        if let Some(Pending { step, write }) = self.pending.take() {
            let dir = write.join()??;
            self.saved = Some((step, dir));
        }
        Ok(self.saved.as_ref().and_then(|(_, dir)| dir.clone()))
    }
}
