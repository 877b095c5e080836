use super::CheckpointError;
use super::tensors::{Dtypes, F32Tensor, copy_f32, parse, read_file, write_tensors};
use crate::model::ParamLayout;
use safetensors::SafeTensors;
use std::collections::BTreeSet;
use std::path::Path;

/// Most unexpected tensor names an error lists.
const UNEXPECTED_NAMES_SHOWN: usize = 5;

/// Saves the flat parameter buffer `params` (laid out by `layout`) under the
/// Hugging Face `GPT2LMHeadModel` names, F32. `lm_head` is tied to `wte` and
/// not written, as `transformers` does; the padding rows of `wte`
/// (`model.vocab_padding`) are not written either.
pub fn save_weights(
    path: &Path,
    layout: &ParamLayout,
    params: &[f32],
) -> Result<(), CheckpointError> {
    write_buffers(path, layout, &[("", params)])
}

/// Loads a file written by [`save_weights`]: exactly the layout's tensors,
/// names, saved shapes and F32, nothing else; padding rows are zero.
pub fn load_weights(path: &Path, layout: &ParamLayout) -> Result<Vec<f32>, CheckpointError> {
    let mut buffers = read_buffers(path, layout, &[""])?;
    Ok(buffers.remove(0))
}

/// Writes several buffers of `layout`'s shape into one file, each tensor
/// named `prefix + name`.
pub(super) fn write_buffers(
    path: &Path,
    layout: &ParamLayout,
    buffers: &[(&str, &[f32])],
) -> Result<(), CheckpointError> {
    let tensors = buffers
        .iter()
        .flat_map(|&(prefix, data)| {
            assert_eq!(
                data.len(),
                layout.len(),
                "buffer does not match the parameter layout"
            );
            layout.specs().iter().map(move |spec| {
                let tensor = F32Tensor {
                    shape: spec.saved_shape(),
                    data: &data[spec.saved_range()],
                };
                (format!("{prefix}{}", spec.name), tensor)
            })
        })
        .collect();
    write_tensors(path, tensors)
}

/// Reads buffers written by [`write_buffers`], strictly: every name present
/// with its exact shape in F32, and no other tensor.
pub(super) fn read_buffers(
    path: &Path,
    layout: &ParamLayout,
    prefixes: &[&str],
) -> Result<Vec<Vec<f32>>, CheckpointError> {
    let bytes = read_file(path)?;
    buffers_of(path, &parse(path, &bytes)?, layout, prefixes)
}

/// Reads every buffer of a file written by [`write_buffers`] with prefixes
/// `<slot>.`: the slots found (by name, sorted) and their values, strictly
/// as [`read_buffers`].
pub(super) fn read_slots(
    path: &Path,
    layout: &ParamLayout,
) -> Result<Vec<(String, Vec<f32>)>, CheckpointError> {
    let bytes = read_file(path)?;
    let file = parse(path, &bytes)?;
    let slots: BTreeSet<String> = file
        .names()
        .into_iter()
        .filter_map(|name| name.split_once('.').map(|(slot, _)| slot.to_string()))
        .collect();
    let prefixes: Vec<String> = slots.iter().map(|slot| format!("{slot}.")).collect();
    let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let buffers = buffers_of(path, &file, layout, &prefixes)?;
    Ok(slots.into_iter().zip(buffers).collect())
}

/// The buffers of `prefixes` in the parsed `file` (read from `path`).
fn buffers_of(
    path: &Path,
    file: &SafeTensors<'_>,
    layout: &ParamLayout,
    prefixes: &[&str],
) -> Result<Vec<Vec<f32>>, CheckpointError> {
    let mut expected = BTreeSet::new();
    let mut buffers = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        let mut buffer = vec![0.0; layout.len()];
        for spec in layout.specs() {
            let name = format!("{prefix}{}", spec.name);
            let view = file
                .tensor(&name)
                .map_err(|_| CheckpointError::MissingTensor {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    looked_for: name.clone(),
                    expected: spec.saved_shape(),
                })?;
            check_shape(path, &name, &spec.saved_shape(), view.shape())?;
            copy_f32(
                path,
                &name,
                &view,
                Dtypes::F32Only,
                &mut buffer[spec.saved_range()],
            )?;
            expected.insert(name);
        }
        buffers.push(buffer);
    }
    reject_unexpected(path, file, |name| expected.contains(name))?;
    Ok(buffers)
}

/// Imports a Hugging Face GPT-2 safetensors file (`model.init`).
///
/// Accepts names with or without the `transformer.` prefix; F32, F16 or
/// BF16; a `wpe` of exactly `model.n_positions` rows (all kept, so they are
/// saved back); `wte` of `model.vocab_size` rows (padding rows are zero);
/// and ignores the causal-mask buffers `*.attn.bias` /
/// `*.attn.masked_bias`. A `lm_head.weight` is checked against `wte` (the
/// model ties them): equal is fine, different is an error. Any other extra, missing or misshapen tensor is an error.
pub fn import_hf_gpt2(path: &Path, layout: &ParamLayout) -> Result<Vec<f32>, CheckpointError> {
    let bytes = read_file(path)?;
    let file = parse(path, &bytes)?;
    let mut params = vec![0.0; layout.len()];
    let mut used = BTreeSet::new();
    for spec in layout.specs() {
        let short = spec.name.strip_prefix("transformer.").unwrap_or(&spec.name);
        let (name, view) = [spec.name.as_str(), short]
            .into_iter()
            .find_map(|candidate| file.tensor(candidate).ok().map(|view| (candidate, view)))
            .ok_or_else(|| CheckpointError::MissingTensor {
                path: path.to_path_buf(),
                name: spec.name.clone(),
                looked_for: format!("{}, {short}", spec.name),
                expected: spec.saved_shape(),
            })?;
        if short == "wpe.weight" {
            check_wpe(path, name, &spec.shape, view.shape())?;
        } else {
            check_shape(path, name, &spec.saved_shape(), view.shape())?;
        }
        let dst = &mut params[spec.saved_range()];
        copy_f32(path, name, &view, Dtypes::Floats, dst)?;
        used.insert(name.to_string());
    }
    check_tied_head(path, &file, layout, &params)?;
    reject_unexpected(path, &file, |name| {
        used.contains(name)
            || name == "lm_head.weight"
            || name.ends_with(".attn.bias")
            || name.ends_with(".attn.masked_bias")
    })?;
    Ok(params)
}

fn check_shape(
    path: &Path,
    name: &str,
    expected: &[usize],
    found: &[usize],
) -> Result<(), CheckpointError> {
    if expected == found {
        return Ok(());
    }
    Err(CheckpointError::Shape {
        path: path.to_path_buf(),
        name: name.to_string(),
        expected: expected.to_vec(),
        found: found.to_vec(),
    })
}

/// `wpe` has exactly `model.n_positions` rows: none is dropped, and a
/// different count names the key that follows the file.
fn check_wpe(
    path: &Path,
    name: &str,
    expected: &[usize],
    found: &[usize],
) -> Result<(), CheckpointError> {
    match (expected, found) {
        ([positions, width], [rows, found_width]) if width == found_width && rows != positions => {
            Err(CheckpointError::WpeRows {
                path: path.to_path_buf(),
                name: name.to_string(),
                rows: *rows,
                positions: *positions,
            })
        }
        _ => check_shape(path, name, expected, found),
    }
}

/// Compares an `lm_head.weight`, if the file has one, with the loaded `wte`.
fn check_tied_head(
    path: &Path,
    file: &SafeTensors<'_>,
    layout: &ParamLayout,
    params: &[f32],
) -> Result<(), CheckpointError> {
    let Ok(head) = file.tensor("lm_head.weight") else {
        return Ok(());
    };
    let wte = layout
        .get("transformer.wte.weight")
        .expect("GPT-2 layouts have wte");
    let same_shape = head.shape() == wte.saved_shape().as_slice();
    let tied = same_shape && {
        let mut values = vec![0.0; wte.saved_range().len()];
        copy_f32(path, "lm_head.weight", &head, Dtypes::Floats, &mut values)?;
        values == params[wte.saved_range()]
    };
    if tied {
        return Ok(());
    }
    Err(CheckpointError::Inconsistent {
        dir: path.to_path_buf(),
        what: "lm_head.weight differs from transformer.wte.weight: the file's model has an \
               untied output layer, and this model ties it to wte (training it would silently \
               drop lm_head); use a GPT-2 file with tied embeddings"
            .into(),
    })
}

fn reject_unexpected(
    path: &Path,
    file: &SafeTensors<'_>,
    allowed: impl Fn(&str) -> bool,
) -> Result<(), CheckpointError> {
    let mut unexpected: Vec<&str> = file.names().into_iter().filter(|n| !allowed(n)).collect();
    if unexpected.is_empty() {
        return Ok(());
    }
    unexpected.sort_unstable();
    let more = unexpected.len().saturating_sub(UNEXPECTED_NAMES_SHOWN);
    let mut names = unexpected[..unexpected.len().min(UNEXPECTED_NAMES_SHOWN)].join(", ");
    if more > 0 {
        names.push_str(&format!(" and {more} more"));
    }
    Err(CheckpointError::UnexpectedTensors {
        path: path.to_path_buf(),
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use safetensors::tensor::{Dtype, TensorView};
    use std::collections::HashMap;

    fn model(seq_len: usize) -> ModelConfig {
        ModelConfig {
            n_layer: 2,
            n_head: 2,
            n_embd: 4,
            vocab_size: 7,
            seq_len,
            init: None,
            n_positions: None,
            vocab_padding: 1,
        }
    }

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 * 0.25 - 3.0).collect()
    }

    /// Writes raw tensors (name, dtype, shape, bytes) as a safetensors file.
    fn write_raw(path: &Path, tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)]) {
        let views: HashMap<String, TensorView<'_>> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, path).unwrap();
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// An HF-hub-style file for `layout` (without its padding rows): short
    /// names (no `transformer.` prefix), the attention-mask buffers and a
    /// tied lm_head.
    fn hub_file(path: &Path, layout: &ParamLayout, params: &[f32]) {
        let mut tensors = Vec::new();
        for spec in layout.specs() {
            let short = spec.name.strip_prefix("transformer.").unwrap().to_string();
            let values = f32_bytes(&params[spec.saved_range()]);
            tensors.push((short, Dtype::F32, spec.saved_shape(), values));
        }
        let wte = layout.get("transformer.wte.weight").unwrap();
        tensors.push((
            "lm_head.weight".into(),
            Dtype::F32,
            wte.saved_shape(),
            f32_bytes(&params[wte.saved_range()]),
        ));
        for i in 0..2 {
            tensors.push((
                format!("h.{i}.attn.bias"),
                Dtype::F32,
                vec![1, 1, 3, 3],
                f32_bytes(&[1.0; 9]),
            ));
            tensors.push((
                format!("h.{i}.attn.masked_bias"),
                Dtype::F32,
                vec![],
                f32_bytes(&[-1e4]),
            ));
        }
        write_raw(path, &tensors);
    }

    #[test]
    fn weights_round_trip_bit_exactly_with_hf_names_and_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let layout = ParamLayout::gpt2(&model(6));
        let params = ramp(layout.len());
        save_weights(&path, &layout, &params).unwrap();
        assert_eq!(load_weights(&path, &layout).unwrap(), params);

        let bytes = std::fs::read(&path).unwrap();
        let file = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(file.len(), layout.specs().len());
        let cases: [(&str, &[usize]); 4] = [
            ("transformer.wte.weight", &[7, 4]),
            ("transformer.wpe.weight", &[6, 4]),
            ("transformer.h.1.attn.c_attn.weight", &[4, 12]),
            ("transformer.h.0.mlp.c_proj.weight", &[16, 4]),
        ];
        for (name, shape) in cases {
            let view = file.tensor(name).unwrap();
            assert_eq!((view.shape(), view.dtype()), (shape, Dtype::F32), "{name}");
        }
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(metadata.metadata().as_ref().unwrap()["format"], "pt");
    }

    /// A hub file (short names, mask buffers, lm_head, 10 positions) imports
    /// into a model of `seq_len = 6` and `n_positions = 10`: every row of
    /// wpe is kept.
    #[test]
    fn hub_files_import_with_prefix_variants_extra_keys_and_a_longer_wpe() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.safetensors");
        let layout = ParamLayout::gpt2(&ModelConfig {
            n_positions: Some(10),
            ..model(6)
        });
        assert_eq!(layout.get("transformer.wpe.weight").unwrap().shape, [10, 4]);
        let params = ramp(layout.len());
        hub_file(&path, &layout, &params);
        assert_eq!(import_hf_gpt2(&path, &layout).unwrap(), params);
        // A file saved by cptrain (long names) imports too.
        let ours = dir.path().join("ours.safetensors");
        save_weights(&ours, &layout, &params).unwrap();
        assert_eq!(import_hf_gpt2(&ours, &layout).unwrap(), params);
    }

    /// With `vocab_padding = 4` the 7-token `wte` has 8 rows in memory: the
    /// file holds the 7 real ones (what Hugging Face expects), and every
    /// load pads them again with a zero row.
    #[test]
    fn padding_rows_are_neither_saved_nor_read() {
        let dir = tempfile::tempdir().unwrap();
        let padded = ParamLayout::gpt2(&ModelConfig {
            vocab_padding: 4,
            ..model(6)
        });
        let plain = ParamLayout::gpt2(&model(6));
        let wte = padded.get("transformer.wte.weight").unwrap();
        assert_eq!((wte.shape[0], wte.saved_shape()[0]), (8, 7));
        assert_eq!(padded.len(), plain.len() + 4);
        let mut params = ramp(padded.len());
        params[wte.saved_range().end..wte.range().end].fill(0.0);
        let path = dir.path().join("model.safetensors");
        save_weights(&path, &padded, &params).unwrap();
        // The file is the unpadded model's, tensor for tensor.
        let unpadded: Vec<f32> = params[..wte.saved_range().end]
            .iter()
            .chain(&params[wte.range().end..])
            .copied()
            .collect();
        assert_eq!(load_weights(&path, &plain).unwrap(), unpadded);
        assert_eq!(load_weights(&path, &padded).unwrap(), params);
        assert_eq!(import_hf_gpt2(&path, &padded).unwrap(), params);
        let hub = dir.path().join("hub.safetensors");
        hub_file(&hub, &padded, &params);
        assert_eq!(import_hf_gpt2(&hub, &padded).unwrap(), params);
    }

    /// Half-precision files are widened: 1.5 and -2.25 are exact in f16 and bf16.
    #[test]
    fn half_precision_tensors_are_converted() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ParamLayout::gpt2(&model(2));
        for dtype in [Dtype::F16, Dtype::BF16] {
            let path = dir.path().join(format!("{dtype:?}.safetensors"));
            let tensors: Vec<_> = layout
                .specs()
                .iter()
                .map(|spec| {
                    let bytes = (0..spec.numel())
                        .flat_map(|i| {
                            let x = if i % 2 == 0 { 1.5_f32 } else { -2.25 };
                            match dtype {
                                Dtype::F16 => half::f16::from_f32(x).to_le_bytes(),
                                _ => half::bf16::from_f32(x).to_le_bytes(),
                            }
                        })
                        .collect();
                    (spec.name.clone(), dtype, spec.shape.clone(), bytes)
                })
                .collect();
            write_raw(&path, &tensors);
            let params = import_hf_gpt2(&path, &layout).unwrap();
            assert_eq!(params[..4], [1.5, -2.25, 1.5, -2.25], "{dtype:?}");
            let err = load_weights(&path, &layout).unwrap_err().to_string();
            assert!(
                err.contains(&format!("is {dtype:?}, but F32 is required")),
                "{err}"
            );
        }
    }

    /// Each malformed file gives an error naming the file, the tensor and
    /// what was expected.
    #[test]
    fn mismatched_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ParamLayout::gpt2(&model(6));
        let params = ramp(layout.len());
        let hub = dir.path().join("hub.safetensors");
        hub_file(&hub, &layout, &params);
        let bigger_vocab = ParamLayout::gpt2(&ModelConfig {
            vocab_size: 9,
            ..model(6)
        });
        let more_layers = ParamLayout::gpt2(&ModelConfig {
            n_layer: 3,
            ..model(6)
        });
        let fewer_layers = ParamLayout::gpt2(&ModelConfig {
            n_layer: 1,
            ..model(6)
        });
        let longer = ParamLayout::gpt2(&model(12));
        let truncated = dir.path().join("truncated.safetensors");
        let hub_bytes = std::fs::read(&hub).unwrap();
        std::fs::write(&truncated, &hub_bytes[..200]).unwrap();
        // The header whole, the tensor data cut short.
        let cut_data = dir.path().join("cut_data.safetensors");
        let header = u64::from_le_bytes(hub_bytes[..8].try_into().unwrap()) as usize;
        std::fs::write(&cut_data, &hub_bytes[..8 + header + 4]).unwrap();
        let missing = dir.path().join("missing.safetensors");
        let cases: [(&Path, &ParamLayout, &[&str]); 7] = [
            (
                &hub,
                &bigger_vocab,
                &[
                    "hub.safetensors: tensor wte.weight has shape [7, 4], but the model needs [9, 4]",
                ],
            ),
            (
                &hub,
                &more_layers,
                &[
                    "has no tensor transformer.h.2.ln_1.weight",
                    "h.2.ln_1.weight",
                    "[4]",
                ],
            ),
            (
                &hub,
                &fewer_layers,
                &[
                    "holds tensors the model has no place for: h.1.attn.c_attn.bias",
                    "and 7 more",
                ],
            ),
            (
                &hub,
                &longer,
                &[
                    "tensor wpe.weight has 6 positions, but model.n_positions = 12",
                    "leave model.n_positions unset",
                ],
            ),
            (
                &truncated,
                &layout,
                &[
                    "truncated.safetensors is not a safetensors file, or is truncated",
                    "holds 200 bytes",
                ],
            ),
            (
                &cut_data,
                &layout,
                &["cut_data.safetensors is not a readable safetensors file"],
            ),
            (&missing, &layout, &["cannot read", "missing.safetensors"]),
        ];
        for (path, layout, fragments) in cases {
            let err = import_hf_gpt2(path, layout).unwrap_err().to_string();
            for fragment in fragments {
                assert!(err.contains(fragment), "{err:?} lacks {fragment:?}");
            }
        }
        // Our own loader is strict: the hub file's short names are not accepted.
        let err = load_weights(&hub, &layout).unwrap_err().to_string();
        assert!(
            err.contains("has no tensor transformer.wte.weight"),
            "{err}"
        );
    }

    #[test]
    fn an_untied_lm_head_is_refused_and_a_tied_one_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ParamLayout::gpt2(&model(2));
        let params = ramp(layout.len());
        let path = dir.path().join("untied.safetensors");
        let mut tensors: Vec<_> = layout
            .specs()
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    Dtype::F32,
                    s.shape.clone(),
                    f32_bytes(&params[s.range()]),
                )
            })
            .collect();
        tensors.push((
            "lm_head.weight".into(),
            Dtype::F32,
            vec![7, 4],
            f32_bytes(&[0.5; 28]),
        ));
        write_raw(&path, &tensors);
        let err = import_hf_gpt2(&path, &layout).unwrap_err().to_string();
        assert!(
            err.contains("lm_head.weight differs from transformer.wte.weight"),
            "{err}"
        );
        let wte = layout.get("transformer.wte.weight").unwrap();
        tensors.last_mut().unwrap().3 = f32_bytes(&params[wte.range()]);
        write_raw(&path, &tensors);
        assert_eq!(import_hf_gpt2(&path, &layout).unwrap(), params);
    }
}
