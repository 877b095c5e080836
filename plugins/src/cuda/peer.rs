//! Copies between the memory of two GPUs of one process (local ranks on
//! different GPUs). Device memory comes from each GPU's stream-ordered pool,
//! and a pool is reachable from another GPU only once it grants that GPU
//! access (`cuMemPoolSetAccess`; `cuCtxEnablePeerAccess` does not cover
//! pools). Where the hardware allows peer access (NVLink, PCIe P2P), the
//! source's pool is opened to the reader once per pair, so
//! `cuMemcpyPeerAsync` goes direct; elsewhere the driver stages the copy.

use std::sync::Mutex;

use cudarc::driver::{result, sys};

use super::CudaError;

/// The (source, reader) device pairs already considered.
static CONSIDERED: Mutex<Vec<(sys::CUdevice, sys::CUdevice)>> = Mutex::new(Vec::new());

/// Opens `source`'s default memory pool to `reader` when the two GPUs can
/// reach each other's memory, once per pair.
pub fn open_pool(source: sys::CUdevice, reader: sys::CUdevice) -> Result<(), CudaError> {
    let mut considered = CONSIDERED.lock().unwrap_or_else(|e| e.into_inner());
    if considered.contains(&(source, reader)) {
        return Ok(());
    }
    let mut can_access = 0;
    // SAFETY: both handles come from live contexts; the out-pointer is valid.
    unsafe { sys::cuDeviceCanAccessPeer(&mut can_access, reader, source) }
        .result()
        .map_err(|e| driver_error("cuDeviceCanAccessPeer", e))?;
    if can_access != 0 {
        let access = sys::CUmemAccessDesc {
            location: sys::CUmemLocation {
                type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE,
                id: reader,
            },
            flags: sys::CUmemAccess_flags::CU_MEM_ACCESS_FLAGS_PROT_READWRITE,
        };
        // SAFETY: the pool belongs to a live device; one descriptor is passed.
        unsafe {
            let pool = result::device::get_default_mem_pool(source)
                .map_err(|e| driver_error("cuDeviceGetDefaultMemPool", e))?;
            sys::cuMemPoolSetAccess(pool, &access, 1)
                .result()
                .map_err(|e| driver_error("cuMemPoolSetAccess", e))?;
        }
    }
    considered.push((source, reader));
    Ok(())
}

fn driver_error(call: &str, e: impl std::fmt::Display) -> CudaError {
    CudaError::Driver {
        call: call.into(),
        message: e.to_string(),
    }
}
