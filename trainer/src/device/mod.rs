//! Where tensors live: [`Buffer`]s owned by one device, and the
//! [`Slice`]/[`SliceMut`] views the kernels take.
//!
//! Parameters, gradients, optimizer moments and activations are buffers of
//! the rank's device; the host touches only token batches going in and
//! scalars and checkpoints coming out. A buffer is either host memory (the
//! CPU device: a plain `Vec<f32>`, so CPU kernels see ordinary slices and
//! pay nothing for the abstraction) or device memory: an address in a
//! device's own address space, opaque to the trainer and interpreted only by
//! the device that allocated it through its [`DeviceMemory`].
//!
//! ```
//! use cptrain::kernels::{CpuKernels, Kernels};
//!
//! let kernels = CpuKernels::default(); // the rank's device
//! let mut grads = kernels.upload(&[1.0, 2.0, 3.0, 4.0])?;
//! // Views cut a buffer the way the model cuts its parameters into tensors.
//! let (first, rest) = grads.view_mut().split_at(1);
//! kernels.scale(rest, 0.5);
//! assert_eq!(first.len(), 1);
//! assert_eq!(&*grads.to_host()?, &[1.0, 1.0, 1.5, 2.0]);
//! # Ok::<(), cptrain::device::DeviceError>(())
//! ```

mod bf16;
mod buffer;
mod host_memory;
mod memory;
mod slice;

pub use bf16::{Bf16Buffer, Bf16Slice, Bf16SliceMut};
pub use buffer::Buffer;
pub use host_memory::HostMemory;
pub use memory::{DeviceAddress, DeviceError, DeviceMemory, copy_through_host};
pub use slice::{Slice, SliceMut};
