//! An optimizer's state as checkpoints hold it: its step count and named
//! per-parameter buffers ("slots").

use std::borrow::Cow;

use crate::device::DeviceError;

/// An optimizer's state in the layout of the parameters: what a checkpoint
/// saves (each slot as `<slot>.<tensor>` in `optimizer.safetensors`) and
/// restores. Slots are borrowed from a host-memory optimizer and copied
/// from a device's.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<'a> {
    /// Optimizer steps taken (torch's `step`; bias corrections use it).
    pub step: u64,
    /// The per-parameter buffers by name (no `.` in a name), in the
    /// optimizer's order, e.g. AdamW's `exp_avg` and `exp_avg_sq` (torch's
    /// state keys).
    pub slots: Vec<(String, Cow<'a, [f32]>)>,
}

impl<'a> OptimizerState<'a> {
    /// The slot called `name`.
    pub fn slot(&self, name: &str) -> Option<&[f32]> {
        self.slots
            .iter()
            .find(|(slot, _)| slot == name)
            .map(|(_, values)| &**values)
    }

    /// The slots' names, in order.
    pub fn slot_names(&self) -> Vec<&str> {
        self.slots.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// The same state with every slot passed through `change` (e.g. cut to
    /// a TP rank's piece, or assembled from every rank's).
    pub fn try_map<'b, E>(
        self,
        mut change: impl FnMut(Cow<'a, [f32]>) -> Result<Cow<'b, [f32]>, E>,
    ) -> Result<OptimizerState<'b>, E> {
        let slots = self
            .slots
            .into_iter()
            .map(|(name, values)| Ok((name, change(values)?)))
            .collect::<Result<_, E>>()?;
        Ok(OptimizerState {
            step: self.step,
            slots,
        })
    }

    /// A state borrowing this one's slots.
    pub fn borrowed(&self) -> OptimizerState<'_> {
        OptimizerState {
            step: self.step,
            slots: self
                .slots
                .iter()
                .map(|(name, values)| (name.clone(), Cow::Borrowed(&**values)))
                .collect(),
        }
    }

    /// Checks that the slots are exactly `names` (in any order; checkpoints
    /// hold them by name), each of `len` values.
    pub fn check(&self, names: &[&str], len: usize) -> Result<(), OptimStateError> {
        let sorted = |names: &[&str]| {
            let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            names.sort();
            names
        };
        let (expected, found) = (sorted(names), sorted(&self.slot_names()));
        if expected != found {
            return Err(OptimStateError::Slots { expected, found });
        }
        match self.slots.iter().find(|(_, values)| values.len() != len) {
            Some((slot, values)) => Err(OptimStateError::Shape {
                slot: slot.clone(),
                expected: len,
                found: values.len(),
            }),
            None => Ok(()),
        }
    }
}

/// An optimizer state that cannot be restored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptimStateError {
    /// The state belongs to another model shape.
    #[error(
        "optimizer state `{slot}` has {found} values, but the model has {expected} parameters; \
         the checkpoint belongs to another model shape"
    )]
    Shape {
        /// The slot.
        slot: String,
        /// Parameters of the model.
        expected: usize,
        /// Values found.
        found: usize,
    },
    /// The state belongs to another optimizer.
    #[error(
        "the checkpoint's optimizer state has the slots {found:?}, but the configured \
         optimizer.kind keeps {expected:?}; resume with the optimizer.kind that wrote it, or \
         start a new run from its weights (model.init)"
    )]
    Slots {
        /// The optimizer's slots.
        expected: Vec<String>,
        /// The checkpoint's.
        found: Vec<String>,
    },
    /// The device failed to take or give the state.
    #[error(transparent)]
    Device(#[from] DeviceError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> OptimizerState<'static> {
        OptimizerState {
            step: 2,
            slots: vec![
                ("a".into(), vec![1.0, 2.0].into()),
                ("b".into(), vec![3.0, 4.0].into()),
            ],
        }
    }

    #[test]
    fn slots_are_found_by_name_and_mapped_in_order() {
        let state = state();
        assert_eq!(state.slot("b"), Some(&[3.0, 4.0][..]));
        assert_eq!(state.slot("c"), None);
        let doubled = state
            .borrowed()
            .try_map(|v| Ok::<_, ()>(v.iter().map(|x| x * 2.0).collect::<Vec<_>>().into()))
            .unwrap();
        assert_eq!(doubled.slot_names(), ["a", "b"]);
        assert_eq!(doubled.slot("a"), Some(&[2.0, 4.0][..]));
        assert_eq!(doubled.step, 2);
    }

    #[test]
    fn another_optimizers_or_shapes_state_is_refused_by_name() {
        let state = state();
        assert_eq!(state.check(&["b", "a"], 2), Ok(()));
        let err = state.check(&["m"], 2).unwrap_err().to_string();
        assert!(
            err.contains(r#"slots ["a", "b"]"#) && err.contains(r#"keeps ["m"]"#),
            "{err}"
        );
        let err = state.check(&["a", "b"], 3).unwrap_err().to_string();
        assert!(err.starts_with("optimizer state `a` has 2 values"), "{err}");
    }
}
