"""Breaks jaxstyle on purpose and checks that the tests claiming to cover each break fail.

    python tests/mutants.py            # every mutant (about 10 minutes on 2 cores)
    python tests/mutants.py NAME ...   # some of them; --list names them all

A mutant is one exact edit of jaxstyle's source (each ``old`` must occur
exactly once): a control made a no-op, reversed, or wired to a constant.
It is applied to a scratch copy of the repository (beside a link to
``../shared``), and the tests named with it run there; the mutant is *caught*
when they fail. A test that no mutant has caught has never been seen to fail:
tests/README.md records this script's last results. Not part of the suite:
it runs pytest once per mutant.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutant(NamedTuple):
  name: str
  file: str  # Relative to jaxstyle/.
  edits: tuple  # ((old, new), ...)
  tests: tuple  # pytest node ids (relative to tests/) that must fail.


def m(name, file, old, new, *tests, more=()):
  return Mutant(name, file, ((old, new),) + tuple(more), tests)


EFFECTS = "test_effects.py::test_objective_controls_change_the_objective_as_documented"
C = "test_conv.py::"
X = "test_export.py::"
MUTANTS = [
    # The four breaks issue 15 found passing the suite.
    m("style layer weights reversed", "objective.py",
      "zip(spec.style_layers, spec.style_layer_weights)",
      "zip(spec.style_layers, spec.style_layer_weights[::-1])",
      f"{EFFECTS}[style_layer_weights]", f"{EFFECTS}[style_layer_weight_exp]"),
    m("L-BFGS memory fixed at 10", "optim/solver.py",
      "return optax.lbfgs(memory_size=self.lbfgs_memory)  #",
      "return optax.lbfgs(memory_size=10)  #",
      "test_effects.py::test_lbfgs_memory_is_the_number_of_pairs_kept",
      more=(("torch_lbfgs(memory_size=self.lbfgs_memory)", "torch_lbfgs(memory_size=10)"),)),
    m("histogram colour preservation a no-op in stylize", "transfer.py",
      "rgb = color.match_colors(rgb, content_rgb)", "rgb = rgb",
      "test_effects.py::test_histogram_colours_are_matched_before_the_style_statistics",
      "test_effects.py::test_histogram_preservation_gives_the_output_the_contents_colours"),
    m("prepared weights prepared again", "objective.py",
      "  if ready and vgg.convs_prepared(", "  if False and vgg.convs_prepared(",
      "test_winograd.py::test_prepared_weights_pass_through_and_run_as_the_raw_ones"),
    m("direct runs keep prepared Winograd kernels", "objective.py",
      "    params = vgg.without_winograd(params)", "    pass",
      "test_winograd.py::test_prepared_weights_pass_through_and_run_as_the_raw_ones"),
    m("VGG's Winograd set chosen by the slowest time", "objective.py",
      "    known = convs.fastest(seconds)", "    known = max(seconds, key=seconds.get)",
      "test_winograd.py::test_auto_times_the_whole_objective_per_size_and_keeps_the_fastest_set"),
    m("VGG's objective timed at one fixed size", "objective.py",
      "shape = ObjectiveShape(network, width_scale, *image_hw, spec).measured_as()",
      "shape = ObjectiveShape(network, width_scale, 64, 64, spec).measured_as()",
      "test_winograd.py::test_auto_times_the_whole_objective_per_size_and_keeps_the_fastest_set",
      "test_winograd.py::test_stylize_times_vgg_at_its_size_and_records_what_ran"),
    m("VGG's timed choice not cached", "objective.py",
      "    cache.put(shape, known, seconds)\n", "",
      "test_winograd.py::test_auto_times_the_whole_objective_per_size_and_keeps_the_fastest_set",
      "test_winograd.py::test_stylize_times_vgg_at_its_size_and_records_what_ran"),
    m("VGG's measured choice not passed to the network", "objective.py",
      "remat=remat,\n                          winograd=spec.winograd)",
      "remat=remat,\n                          winograd=())",
      "test_winograd.py::test_stylize_times_vgg_at_its_size_and_records_what_ran",
      "test_winograd.py::test_winograd_run_matches_direct_and_compiles_once"),
    m("vgg_features runs every prepared layer by Winograd", "vgg/__init__.py",
      "        if name in by_winograd:", '        if name in by_winograd or "winograd" in layer:',
      "test_winograd.py::test_vgg_features_runs_exactly_the_named_layers_by_winograd"),
    m("bench convs --refresh leaves VGG's choice cached", "objective.py",
      "  if refresh:\n    cache.entries.pop(shape.key(), None)",
      "  if False:\n    cache.entries.pop(shape.key(), None)",
      f"{C}test_bench_convs_prints_caches_and_refreshes_the_choices"),
    m("a sweep's record leaves out what VGG ran", "sweep.py",
      '"weights": result.weights, "convolutions": result.convolutions}',
      '"weights": result.weights}',
      "test_sweep.py::test_records_resume_and_sheet"),
    m("training's loss network not timed at the crop", "nets/train.py",
      "image_hw=(config.crop, config.crop), width_scale=vgg_width,",
      "image_hw=None, width_scale=vgg_width,",
      "test_winograd.py::test_training_times_its_loss_network_at_the_crop_and_records_it"),
    m("stylize times VGG at the default size, not the content's", "transfer.py",
      "                                   image_hw=original_content.shape[:2],",
      "                                   image_hw=(512, 512),",
      "test_winograd.py::test_stylize_times_vgg_at_its_size_and_records_what_ran"),
    m("torch L-BFGS's first step by the gradient's l2 norm", "optim/optimizers.py",
      "l1 = sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(grad))",
      "l1 = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grad)))",
      "test_optimizers.py::test_first_step_is_lr_over_the_gradients_l1_norm",
      "test_presets.py::test_preset_replays_its_sources_run_in_float64"),
    m("torch L-BFGS keeps pairs of negative curvature", "optim/optimizers.py",
      "keep = ys > CURVATURE_THRESHOLD", "keep = ys == ys",
      "test_optimizers.py::test_iterates_equal_torch_lbfgs_in_float64"),
    m("torch L-BFGS's first loop oldest first", "optim/optimizers.py",
      "i = memory_size - 1 - j", "i = j",
      "test_optimizers.py::test_iterates_equal_torch_lbfgs_in_float64", "test_presets.py::test_preset_replays_its_sources_run_in_float64"),
    m("torch L-BFGS's scaling never updated", "optim/optimizers.py",
      "h_diag = jnp.where(keep, ys / optax.tree.vdot(y, y), state.h_diag)",
      "h_diag = state.h_diag",
      "test_optimizers.py::test_iterates_equal_torch_lbfgs_in_float64", "test_presets.py::test_preset_replays_its_sources_run_in_float64"),
    m("clamp a no-op", "optim/solver.py", "image = jnp.clip(image, 0.0, 255.0)", "image = image",
      "test_presets.py::test_preset_replays_its_sources_run_in_float64[pytorch-tutorial]",
      "test_presets.py::test_preset_run_follows_its_source_as_closely_as_torchs_own_float32[pytorch-tutorial]"),
    m("pixel range ignored", "optim/solver.py", "return 255.0 / self.pixel_range", "return 1.0",
      "test_presets.py::test_preset_replays_its_sources_run_in_float64[pytorch-tutorial]",
      "test_controls.py::test_pixel_range_changes_the_optimisers_units_not_the_objective",
      "test_presets.py::test_preset_run_follows_its_source_as_closely_as_torchs_own_float32[pytorch-tutorial]"),
    m("zoom linesearch evaluates the unscaled variable", "optim/solver.py",
      "return objective(params, targets, _scaled(u, unit), weights, spec)[0]",
      "return objective(params, targets, u, weights, spec)[0]", "test_controls.py::test_pixel_range_changes_the_optimisers_units_not_the_objective[zoom]"),
    m("zoom gradient left in the optimiser's units", "optim/solver.py",
      'grad = _scaled(optax.tree.get(opt_state, "grad"), 1 / unit)',
      'grad = optax.tree.get(opt_state, "grad")', "test_controls.py::test_pixel_range_changes_the_optimisers_units_not_the_objective[zoom]"),
    m("remat a no-op", "objective.py", "pooling=spec.pooling, remat=remat,",
      "pooling=spec.pooling, remat=False,",
      "test_effects.py::test_remat_recomputes_the_forward_and_keeps_the_gradient"),
    # Every other objective control, ignored or wired to a constant.
    m("style scale ignored", "transfer.py", "max(1, round(config.size * scale))", "config.size",
      "test_effects.py::test_style_scale_resizes_the_style_before_its_statistics"),
    m("style norm ignored", "objective.py", "norm=spec.style_norm, pixels=pixels)",
      "norm='gatys', pixels=pixels)", f"{EFFECTS}[style_norm_chw]", f"{EFFECTS}[style_norm_hw]",
      f"{EFFECTS}[style_norm_keras]"),
    m("content norm ignored", "objective.py", "norm=spec.content_norm)", "norm='half_sum')",
      f"{EFFECTS}[content_norm]", f"{EFFECTS}[content_layers]"),
    m("blend weights reversed", "objective.py",
      "  blend = normalised_weights(blend_weights, len(styles))\n  out = {}",
      "  blend = normalised_weights(blend_weights, len(styles))[::-1]\n  out = {}",
      f"{EFFECTS}[style_blend_weights]"),
    m("masks given to the wrong styles", "transfer.py", "for m in config.style_masks]",
      "for m in config.style_masks[::-1]]",
      "test_effects.py::test_style_masks_from_files_give_each_style_its_region",
      "test_effects.py::test_masks_confine_each_style_to_its_region_in_the_output"),
    m("pooling ignored", "objective.py", "tv_beta=config.tv_beta, pooling=config.pooling,",
      "tv_beta=config.tv_beta, pooling='max',", f"{EFFECTS}[pooling_avg]"),
    m("TV exponent ignored", "objective.py", "losses.tv_loss(x_HxWx3, beta=spec.tv_beta)",
      "losses.tv_loss(x_HxWx3, beta=2.0)", f"{EFFECTS}[tv_beta]"),
    m("geometric layer weights reversed", "config.py",
      "self.style_layer_weight_exp ** i for i in range(len(self.style_layers)))",
      "self.style_layer_weight_exp ** -i for i in range(len(self.style_layers)))",
      f"{EFFECTS}[style_layer_weight_exp]"),
    m("Adam learning rate ignored", "optim/solver.py", "return optax.adam(self.lr)",
      "return optax.adam(10.0)",
      "test_effects.py::test_adam_first_step_moves_each_pixel_by_lr_against_the_gradient"),
    m("record_terms ignored", "optim/solver.py", "    else:\n      terms = nan",
      "    else:\n      terms = _terms(params, targets, image, spec)",
      "test_effects.py::test_terms_are_recorded_every_n_iterations_and_at_the_last_or_not_at_all"),
    m("terms_every ignored", "optim/solver.py",
      "due = (done % solver.terms_every == 0) | (done == final_step)",
      "due = True", "test_effects.py::test_terms_are_recorded_every_n_iterations_and_at_the_last_or_not_at_all"),
    m("the last iteration's terms not recorded", "optim/solver.py",
      "due = (done % solver.terms_every == 0) | (done == final_step)",
      "due = done % solver.terms_every == 0",
      "test_effects.py::test_terms_are_recorded_every_n_iterations_and_at_the_last_or_not_at_all"),
    m("bfloat16 a no-op", "objective.py",
      '  if spec.precision == "bfloat16":\n    params = jax.tree.map',
      '  if False:\n    params = jax.tree.map',
      "test_controls.py::test_bfloat16_changes_precision_not_the_objective"),
    # Gradients, resumes and interruptions.
    m("conv3x3 gradient with an unflipped kernel", "conv.py",
      "jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)", "kernel.transpose(0, 1, 3, 2)",
      "test_vgg.py::test_conv3x3_gradients_equal_jax_own_rule"),
    m("resume ignores the checkpoint's state", "transfer.py",
      "states = _restore(template, checkpoint.resume.leaves, checkpoint.path, problem.mesh)",
      "states = template; _restore(template, checkpoint.resume.leaves, checkpoint.path, "
      "problem.mesh)",
      "test_resume.py::test_sigkill_then_resume_is_bit_identical",
      "test_resume.py::test_ctrl_c_writes_image_and_checkpoint_and_exits_130"),
    m("a second Ctrl-C waits like the first", "interrupts.py", 'if flag["hit"]:', "if False:",
      "test_resume.py::test_a_second_ctrl_c_stops_at_once"),
    m("resume accepts changed inputs", "checkpoint.py",
      'saved.meta["inputs"] != inputs:', 'saved.meta["inputs"] != inputs and False:',
      "test_resume.py::test_resume_refuses_a_missing_or_mismatched_checkpoint"),
    # Outputs, records and the command line.
    m("contact sheet does not mark failures", "sweep.py",
      'draw.text((x + 6, y + 6), "FAILED", fill="red")', "pass",
      "test_sweep.py::test_failing_members_are_recorded_and_the_sweep_goes_on"),
    m("members_in_program ignores --max-members", "sweep.py",
      "min(len(members), max_members or len(members))", "len(members)",
      "test_cli.py::test_sweep_max_members_splits_each_program"),
    m("reproduce accepts other weights", "provenance.py",
      'if weights.sha256 != record["weights"]["sha256"] or',
      'if False and weights.sha256 != record["weights"]["sha256"] or',
      "test_cli.py::test_reproduce_refuses_other_weights_and_unrecorded_pngs"),
    m("progress bar never shown", "progress.py", "disable=not enabled,", "disable=True,",
      "test_cli.py::test_progress_bar_shows_iterations_loss_and_rate"),
    m("download md5 not checked", "vgg/convert.py", "if digest.hexdigest() != md5:", "if False:",
      "test_convert.py::test_download_checks_md5_and_converts",
      "test_cli.py::test_weights_download_checks_the_md5_converts_and_info_names_the_network"),
    m("download timeout ignored", "vgg/convert.py", "urllib.request.urlopen(url, timeout=timeout)",
      "urllib.request.urlopen(url)",
      "test_cli.py::test_weights_download_gives_up_after_timeout"),
    m("batch runs every member in every process", "cli/pixels.py",
      "share = distributed.my_share(len(members))", "share = list(range(len(members)))",
      "test_cli.py::test_batch_distributed_runs_and_writes_only_this_process_share"),
    # Feed-forward networks.
    m("conditional IN mixes the styles in reverse", "nets/johnson.py",
      "gamma, beta = style_NxS @ self.scale[...], style_NxS @ self.bias[...]",
      "gamma, beta = style_NxS[:, ::-1] @ self.scale[...], style_NxS[:, ::-1] @ self.bias[...]",
      "test_nets.py::test_conditional_instance_norm_picks_and_mixes_styles"),
    m("converted kernels with height and width swapped", "nets/models.py",
      "value = value.transpose(2, 3, 1, 0)  # OIHW", "value = value.transpose(3, 2, 1, 0)  # OIHW",
      "test_nets.py::test_converted_transformer_net_matches_torch_forward"),
    m("apply does not crop the padding back", "nets/apply.py",
      "out = jax.lax.slice_in_dim(jax.lax.slice_in_dim(forward(x), 0, h, axis=1), 0, w, axis=2)",
      "out = forward(x)",
      "test_nets.py::test_models_convert_info_and_apply_from_the_cli"),
    m("resume restores the params but not Adam's state", "nets/train.py",
      'state, opt_state = saved["state"], jax.tree.unflatten(',
      'state, _ = saved["state"], jax.tree.unflatten(',
      "test_nets.py::test_training_killed_then_resumed_ends_bit_identical"),
    m("photo order ignores the epoch", "nets/data.py",
      "np.random.default_rng([self.seed, epoch])", "np.random.default_rng([self.seed])",
      "test_nets.py::test_photo_order_is_seeded_per_epoch_and_unreadable_files_are_skipped"),
    m("training never splits the batch over devices", "nets/train.py",
      "if len(devices) == 1 or batch % len(devices):", "if True:",
      "test_batch.py::test_members_are_sharded_over_devices"),
    m("Pillow warnings swallowed", "images.py",
      "warnings.warn(f\"{path}: {' '.join(str(w.message).split())}\", ImageWarning, stacklevel=2)",
      "pass", "test_images.py::test_pillows_own_warnings_are_said_with_the_file_name"),
    # AdaIN and the mean/std style loss.
    m("AdaIN alpha ignored", "nets/adain.py", "self.decoder(alpha * t + (1 - alpha) * content)",
      "self.decoder(t)", "test_adain.py::test_adain_forward_matches_a_numpy_transcription"),
    m("AdaIN style mix reversed", "nets/adain.py",
      "target_std = (mix_BxK @ style_std_KxC)", "target_std = (mix_BxK[:, ::-1] @ style_std_KxC)",
      "test_adain.py::test_adain_forward_matches_a_numpy_transcription",
      "test_adain.py::test_adain_trains_on_two_folders_and_applies_with_any_style"),
    m("AdaIN keeps the content's standard deviation", "nets/adain.py",
      "return style_std * (content_NxHxWxC - mean) / std + style_mean",
      "return (content_NxHxWxC - mean) + style_mean",
      "test_adain.py::test_adain_gives_the_content_the_style_statistics"),
    m("mean/std style loss drops the std", "losses.py",
      "+ jnp.sum(jnp.square(std_N - target[\"std\"]))) / mean_N.shape[0]",
      ") / mean_N.shape[0]", f"{EFFECTS}[style_loss_mean_std]"),
    m("truncated VGG19 taken for VGG16", "vgg/__init__.py",
      'return "vgg19" if "block3_conv4" in params else "vgg16"',
      'return "vgg19" if "block5_conv4" in params else "vgg16"',
      "test_adain.py::test_adain_forward_matches_a_numpy_transcription"),
    # Video.
    m("temporal loss ignores the reliability weights", "losses.py",
      "return jnp.sum(weights_HxW[..., None] * jnp.square(diff))",
      "return jnp.sum(jnp.square(diff))",
      "test_video.py::test_temporal_term_and_its_gradient_against_numpy"),
    m("warp samples against the flow", "video/flow.py",
      "cv2.remap(img, gx + flow_HxWx2[..., 0], gy + flow_HxWx2[..., 1]",
      "cv2.remap(img, gx - flow_HxWx2[..., 0], gy - flow_HxWx2[..., 1]",
      "test_video.py::test_warping_by_the_pans_true_flow_is_exact_and_its_uncovered_strip_is_unreliable",
      "test_video.py::test_temporal_consistency_lowers_the_warping_error"),
    m("uncovered pixels trusted", "video/flow.py",
      "  return inconsistent | outside", "  return inconsistent",
      "test_video.py::test_warping_by_the_pans_true_flow_is_exact_and_its_uncovered_strip_is_"
      "unreliable"),
    m("the warping error counts occluded pixels", "video/flow.py",
      "mask = ~occluded(backward, optical_flow(inputs[t - 1], inputs[t]))",
      "mask = np.ones(backward.shape[:2], bool)",
      "test_video.py::test_the_warping_error_is_lais_on_a_pan_with_a_known_occlusion"),
    m("video scores the PNGs instead of the encoded frames", "video/stylize.py",
      "  frames = read_clip(out).frames", "  frames = read_clip(frames_dir(out)).frames",
      "test_video.py::test_video_and_video_metrics_score_the_same_frames_of_an_mp4"),
    m("variable-rate files read at a constant rate", "video/io.py",
      'output_params=["-fps_mode", "passthrough"]', "output_params=[]",
      "test_video.py::test_frames_and_every_on_odd_variable_rate_and_rotated_mp4s"),
    m("video defaults to per-frame stylisation", "video/stylize.py",
      "DEFAULT_TEMPORAL_WEIGHT = 300.0", "DEFAULT_TEMPORAL_WEIGHT = 0.0",
      "test_video.py::test_temporal_consistency_lowers_the_warping_error"),
    m("temporal weight never reaches the objective", "objective.py",
      "    total = total + weights.temporal * terms[\"temporal\"]", "    total = total",
      "test_video.py::test_temporal_term_and_its_gradient_against_numpy",
      "test_video.py::test_temporal_consistency_lowers_the_warping_error"),
    m("the video driver gives a temporal method no previous frame", "video/stylize.py",
      "        previous = previous_frame(clip, folder, first)\n",
      "        previous = None\n",
      "test_video.py::test_any_frame_stylizer_is_driven_with_the_previous_output_and_flow_or_in_"
      "batches", "test_video.py::test_temporal_consistency_lowers_the_warping_error"),
    m("the video driver batches a temporal method", "video/stylize.py",
      "step = 1 if method.temporal else method.batch", "step = method.batch",
      "test_video.py::test_any_frame_stylizer_is_driven_with_the_previous_output_and_flow_or_in_"
      "batches"),
    m("video's Ctrl-C flag never read", "video/stylize.py",
      '        if interrupted["hit"]:\n          raise KeyboardInterrupt',
      "        if False:\n          raise KeyboardInterrupt",
      "test_video.py::test_ctrl_c_leaves_a_playable_partial_clip_and_a_rerun_finishes_it"),
    m("video resume starts over", "video/stylize.py", "start = first_missing(folder, count)",
      "start = 0",
      "test_video.py::test_a_killed_clip_resumes_at_the_first_missing_frame_and_equals_an_unbroken_run"),
    # Issue 13's small things and sweeps.
    m("atomic writes keep the temporary file's 0600", "files.py",
      "    os.chmod(tmp, _mode_for(dest))\n", "",
      "test_images.py::test_outputs_get_the_mode_a_plain_write_would"),
    m("enlargement never warned", "images.py", "if factor > MAX_ENLARGEMENT:", "if False:",
      "test_images.py::test_enlarging_a_tiny_image_more_than_4x_warns_with_its_name_and_factor"),
    m("a sweep group runs as one call, recorded at its end", "sweep.py",
      "size = min(len(members), max_members or len(members))", "size = len(members)",
      "test_sweep.py::test_a_sweep_killed_between_sub_batches_keeps_the_finished_one"),
    m("demo keeps the trained-weights TV weight on random features", "demo.py",
      'RANDOM_FEATURE_WEIGHTS = {"tv_weight": 1.0}', 'RANDOM_FEATURE_WEIGHTS = {}',
      "test_cli.py::test_demo_writes_result_comparison_and_plot"),
    m("demo overrides a TV weight the user gave", "demo.py",
      "if getattr(config, k) == getattr(StyleConfig(), k)}", "}",
      "test_cli.py::test_demo_writes_result_comparison_and_plot"),
    m("Keras kernel read transposed", "vgg/convert.py",
      "kernel, bias = (np.asarray(group[w], np.float32) for w in weight_names)",
      "kernel, bias = (np.asarray(group[w], np.float32) for w in weight_names)\n"
      "        kernel = kernel.transpose(1, 0, 2, 3)",
      "test_convert.py::test_keras3_file_converts_to_features_equal_to_keras_forward"),
    # Issue 22: the temporal term reaching real runs, and commands offering what they honour.
    m("temporal target dropped from L-BFGS members", "optim/members.py",
      "return one(params, targets._replace(style=xs[0]), *xs[1:])",
      "return one(params, Targets(targets.content, xs[0], targets.masks), *xs[1:])",
      "test_video.py::test_the_temporal_weight_reaches_a_real_runs_objective_in_the_amount_the_"
      "loss_predicts", "test_video.py::test_the_temporal_term_is_zero_on_a_static_clip"),
    m("train offers pixel optimisation's options", "nets/train.py",
      'OBJECTIVE_GROUPS = ("objective", "compute")',
      'OBJECTIVE_GROUPS = ("objective", "compute", "pixels")',
      "test_commands.py::test_training_offers_only_objective_options_and_each_reaches_the_"
      "objective", "test_commands.py::test_every_preset_trains"),
    m("a preset's dropped settings not named", "cli/main.py",
      "  if dropped:\n    names =", "  if False:\n    names =",
      "test_commands.py::test_every_preset_trains"),
    m("video --model ignores the optimiser's options", "cli/video.py",
      "misplaced = [flag(d) for d in others if d in args.given]", "misplaced = []",
      "test_commands.py::test_video_refuses_the_other_methods_options_instead_of_ignoring_them"),
    m("apply takes AdaIN's options for a Johnson network", "cli/networks.py",
      'if meta["architecture"] != "adain" and adain_only:', "if False:",
      "test_commands.py::test_apply_refuses_adain_options_for_a_johnson_network"),
    m("models info does not check the params' sha256", "cli/networks.py",
      "net, meta = models.load_model(args.model)  # Checks",
      "meta = models.read_meta(args.model); net = models.abstract(models.ARCHITECTURES["
      "meta['architecture']][0], models.ARCHITECTURES[meta['architecture']][1](**meta['spec']))  #",
      "test_nets.py::test_models_info_summarises_a_trained_model_and_refuses_a_damaged_one"),
    m("a diverged run passes silently", "cli/pixels.py",
      'if final > DIVERGED * result.initial["total"]:', "if False:",
      "test_cli.py::test_a_run_whose_loss_rose_says_so_and_names_the_fix"),
    m("apply does not say the model learnt from random features", "cli/networks.py",
      "  if models.trained_on_random_features(meta):", "  if False:",
      "test_nets.py::test_models_info_summarises_a_trained_model_and_refuses_a_damaged_one"),
    # (A refusal made a no-op would allocate the terabytes it refuses: not a safe mutant.)
    m("a refusal names a largest size that does not fit", "memory.py",
      "low, high = (middle, high) if need(middle) <= have else (low, middle)",
      "low, high = (middle, high)",
      "test_memory_estimates.py::test_a_size_that_cannot_fit_is_refused_before_anything_is_"
      "allocated", "test_memory_estimates.py::test_the_largest_size_offered_fits_and_one_more_"
      "step_does_not"),
    m("a batch's forward pass costs one image's", "memory.py",
      "+ images * pixels * 490 * width)", "+ pixels * 490 * width)",
      "test_memory_estimates.py::test_the_estimate_is_within_a_quarter_of_the_measured_peak_at_"
      "two_sizes"),
    m("training's estimate ignores the crop", "memory.py",
      "pixels * (10414 * width ** 2 + 3360 * vgg_width)",
      "0 * (10414 * width ** 2 + 3360 * vgg_width)",
      "test_memory_estimates.py::test_the_estimate_is_within_a_quarter_of_the_measured_peak_at_"
      "two_sizes"),
    m("content kept compares the photo with itself", "nets/quality.py",
      "a, b = edge_magnitude(output_HxWx3).ravel()", "a, b = edge_magnitude(photo_HxWx3).ravel()",
      "test_quality.py::test_content_kept_is_the_edge_correlation_scipy_computes"),
    m("training never warns that the photo is lost", "nets/train.py",
      "if (kept < quality.CONTENT_KEPT_WARNING and not warned", "if (False and not warned",
      "test_quality.py::test_training_reports_content_kept_and_warns_once_when_it_is_low"),
    m("the feed-forward demo trains on the photo it holds out", "demo.py",
      "        if path.name != HELD_OUT.name:", "        if True:",
      "test_readme_recipes.py::test_the_feed_forward_demo_writes_a_photo_it_never_saw"),
    m("classic option names get no hint", "cli/options.py",
      'hint = f"; {\', \'.join(hints)}" if hints else ""', 'hint = ""',
      "test_cli.py::test_version_classic_option_names_and_a_closed_pipe"),
    m("a closed pipe ends in a traceback", "cli/main.py",
      "    except BrokenPipeError:", "    except ZeroDivisionError:",
      "test_cli.py::test_version_classic_option_names_and_a_closed_pipe"),
    m("help states the class's defaults, not the ones in use", "cli/options.py",
      'meta = dict(f.metadata, help=f.metadata["help"].format_map(values))',
      'meta = dict(f.metadata, help=f.metadata["help"].format_map(dataclasses.asdict(cls())))',
      "test_commands.py::test_train_help_names_the_network_and_weights_it_uses"),
    # Convolutions (issue 23): each algorithm's arithmetic, and the choice's controls.
    m("sub-pixel phases merge the wrong kernel rows", "conv.py",
      "_PHASE_ROWS = (((1, 0, 0), (0, 1, 1)), ((1, 1, 0), (0, 0, 1)))",
      "_PHASE_ROWS = (((1, 1, 0), (0, 0, 1)), ((1, 0, 0), (0, 1, 1)))",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[subpixel]",
      f"{C}test_every_plan_gives_the_same_network_output_to_float_rounding"),
    m("space-to-depth blocks in the wrong order", "conv.py",
      "x.reshape(n, hb, 2, wb, 2, c).transpose(0, 1, 3, 2, 4, 5)",
      "x.reshape(n, hb, 2, wb, 2, c).transpose(0, 1, 3, 4, 2, 5)",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[s2d]"),
    m("kernel gradient dropped", "conv.py",
      'return jax.vjp(lambda k: _forward(x, k, stride, upsample, "direct"), kernel)[1](g)[0]',
      "return jnp.zeros_like(kernel)",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[unfold]"),
    m("auto ignores the margin", "conv.py",
      "if \"direct\" in times and times[best] > MARGIN * times[\"direct\"]:",
      "if False:",
      f"{C}test_margin_keeps_direct_on_a_near_tie",
      f"{C}test_auto_keeps_the_measured_fastest_and_caches_it"),
    m("the conv cache is never read", "conv.py",
      "  known = cache.get(shape)\n", "  known = None\n",
      f"{C}test_auto_keeps_the_measured_fastest_and_caches_it",
      f"{C}test_the_cache_is_read_not_remeasured_and_a_damaged_one_is_remeasured",
      f"{C}test_apply_reruns_byte_identical_with_an_empty_and_a_warm_cache"),
    m("a plan is not set on the network", "nets/layers.py",
      "    module.algorithm = algorithm\n", "    pass\n",
      f"{C}test_one_algorithm_for_every_layer_it_applies_to_direct_elsewhere",
      f"{C}test_every_plan_gives_the_same_network_output_to_float_rounding"),
    m("tiny layers timed too", "conv.py",
      "shape.macs() < UNMEASURED_MACS:",
      "shape.macs() < 0:",
      f"{C}test_tiny_layers_run_direct_untimed"),
    m("bench convs --refresh a no-op", "conv.py",
      "    if refresh:\n      cache.entries.pop(", "    if False:\n      cache.entries.pop(",
      f"{C}test_bench_convs_prints_caches_and_refreshes_the_choices"),
    m("winograd's ring cropped on the wrong side", "conv.py",
      "winograd.transform_kernel(kernel_KxKxCinxCout, 2))[\n        :, 1:-1, 1:-1]",
      "winograd.transform_kernel(kernel_KxKxCinxCout, 2))[\n        :, :-2, 1:-1]",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[winograd]"),
    m("direct padded unevenly", "conv.py",
      "((stride, stride), (stride, stride)))[:, 1:-1, 1:-1]",
      "((stride, stride), (stride, stride - 1)))[:, 1:-1, 1:-1]",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[direct]"),
    m("valid convolves with padding", "conv.py",
      '_numpy_reflect(upsampled, k // 2), kernel_KxKxCinxCout, stride, "VALID")',
      '_numpy_reflect(upsampled, k // 2), kernel_KxKxCinxCout, stride, ((0, 1), (0, 1)))',
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[valid]"),
    m("reflection padding's adjoint puts a mirrored band one pixel off", "conv.py",
      "band(0, pad, 1, n - pad - 1)", "band(0, pad, 0, n - pad)",
      f"{C}test_reflection_padding_gradient_is_its_adjoint_by_numpy",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[direct]"),
    m("reflection padding's adjoint drops the far band", "conv.py",
      "core + band(0, pad, 1, n - pad - 1) + band(", "core + band(0, pad, 1, n - pad - 1) + 0 * band(",
      f"{C}test_reflection_padding_gradient_is_its_adjoint_by_numpy",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[winograd]"),
    m("an algorithm runs a layer it cannot", "conv.py",
      "  if not applies(algorithm, k, stride, upsample, cin):\n    raise",
      "  if False:\n    raise",
      f"{C}test_an_algorithm_that_cannot_run_a_layer_says_so"),
    m("layer shapes forget training", "nets/layers.py",
      "module.upsample,\n                                           grad, dtype)",
      "module.upsample,\n                                           False, dtype)",
      f"{C}test_layer_shapes_sees_every_layer_at_its_own_size"),
    m("AdaIN's second stage upsamples outside its convolution", "nets/adain.py",
      "nnx.List([_Conv(c2, c2, upsample=2, rngs=rngs), _Conv(c2, c1, rngs=rngs)])",
      "nnx.List([_Conv(c2, c2, rngs=rngs), _Conv(c2, c1, rngs=rngs)])",
      f"{C}test_adain_decoder_fuses_its_upsampling_into_three_convolutions"),
    m("the photo's gradient computed anyway", "conv.py",
      "wanted = tuple(() if a.perturbed else None for a in (x, kernel))",
      "wanted = ((), ())",
      f"{C}test_only_the_differentiated_argument_gets_a_gradient_computed[unfold-9-1-1]",
      f"{C}test_only_the_differentiated_argument_gets_a_gradient_computed[s2d-3-2-1]"),
    m("sub-pixel kernel gradient reads the wrong phase's window", "conv.py",
      "window[a:a + 2, b:b + 2, :, a, b]", "window[a:a + 2, b:b + 2, :, b, a]",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[subpixel]"),
    m("kernel gradient by products with its rows reversed", "conv.py",
      "return jnp.stack(rows).reshape(k, k, cin, cout)",
      "return jnp.stack(rows[::-1]).reshape(k, k, cin, cout)",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[s2d]",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[subpixel]"),
    m("fftgrad convolves instead of correlating", "conv.py",
      "jnp.einsum(\"nyxc,nyxo->yxco\", image, jnp.conj(cotangents))",
      "jnp.einsum(\"nyxc,nyxo->yxco\", image, cotangents)",
      f"{C}test_every_algorithm_equals_lax_in_float64_values_and_gradients[fftgrad]"),
    m("fftgrad timed for apply too", "conv.py",
      'skip = ("valid",) if self.grad else ("valid", "fftgrad")', 'skip = ("valid",)',
      f"{C}test_fftgrad_is_timed_only_where_the_layer_trains"),
    m("a tiled stylize's content targets from one whole-image pass", "objective.py",
      "  if not spec.tile:\n    return features(params, content_rgb_HxWx3, spec.layers, spec)",
      "  if True:\n    return features(params, content_rgb_HxWx3, spec.layers, spec)",
      "test_tiled.py::test_a_tiled_stylize_never_runs_the_network_over_the_whole_image"),
    m("large layers timed at full size", "conv.py",
      "    if self.batch * self.height * self.width <= MEASURED_POSITIONS:\n      return self",
      "    if True:\n      return self",
      f"{C}test_large_layers_are_timed_on_a_scaled_down_copy"),
    m("every command turns the compile cache on", "cli/table.py",
      "for c in COMMANDS if c.compiles)", "for c in COMMANDS)",
      "test_cli.py::test_the_command_table_is_the_parser_and_the_compile_cache_list"),
    m("the table's --distributed not offered", "cli/table.py",
      "    if self.distributed is not None:\n", "    if False:\n",
      "test_cli.py::test_the_command_table_is_the_parser_and_the_compile_cache_list",
      "test_cli.py::test_batch_distributed_runs_and_writes_only_this_process_share"),
    # Feed-forward controls (issue 24): each where it acts, as users run it.
    m("apply ignores --preserve-colors", "cli/networks.py",
      '        if args.preserve_colors == "luminance":\n', "        if False:\n",
      "test_nets.py::test_models_convert_info_and_apply_from_the_cli"),
    m("training weighs TV by the content weight", "nets/train.py",
      "loss_weights = LossWeights.from_config(objective_config)",
      "loss_weights = LossWeights.from_config(objective_config.replace("
      "tv_weight=objective_config.content_weight))",
      "test_nets.py::test_training_weighs_each_loss_term_by_its_own_option"),
    m("train ignores --held-out", "cli/networks.py",
      'held_out=_held_out(args.held_out, "content"),\n                                resume=',
      'held_out=_held_out(None, "content"),\n                                resume=',
      "test_nets.py::test_training_writes_a_model_that_lowers_the_objective_on_held_out_photos"),
    m("apply's --conv ignored", "cli/networks.py",
      "      conv=args.conv, log=conv.stderr_log)", "      conv='auto', log=conv.stderr_log)",
      f"{C}test_apply_reruns_byte_identical_with_an_empty_and_a_warm_cache"),
    # Export (issue 25).
    m("export's mix not normalised", "nets/export.py",
      "net(x, mix / mix.sum(1, keepdims=True))", "net(x, mix)",
      f"{X}test_onnxruntime_runs_the_export_as_apply_does_at_any_size[cin]"),
    m("export's reflection repeats the edge", "conv.py",
      "head = jnp.flip(jax.lax.slice_in_dim(x, 1, pad + 1, axis=axis), axis)",
      "head = jnp.flip(jax.lax.slice_in_dim(x, 0, pad, axis=axis), axis)",
      f"{X}test_onnxruntime_runs_the_export_as_apply_does_at_any_size[johnson]",
      f"{X}test_onnxruntime_runs_the_export_as_apply_does_at_any_size[adain]"),
    m("padding to a multiple not flipped", "nets/apply.py",
      "  tail = jnp.flip(jax.lax.slice_in_dim(x, n - multiple, n - 1, axis=axis), axis)",
      "  tail = jax.lax.slice_in_dim(x, n - multiple, n - 1, axis=axis)",
      f"{X}test_padding_to_a_multiple_is_numpys_reflection_at_the_end"),
    m("the page ignores the query's mix", "nets/page/index.html",
      "sliders.forEach((s, k) => { s.max = Math.max(1, weights[k]); s.value = weights[k]; });",
      "",
      f"{X}test_the_page_stylizes_as_onnxruntime_does_driven_by_its_query"),
    m("the page ignores the query's alpha", "nets/page/index.html",
      '$("alpha").value = alpha;', "",
      f"{X}test_the_page_stylizes_as_onnxruntime_does_driven_by_its_query"),
    m("the page swallows errors", "nets/page/index.html",
      'function fail(message) { setState("error: " + message, message); }',
      'function fail(message) { setState("done", ""); }',
      f"{X}test_the_page_reports_bad_queries_on_the_page"),
    m("serve leaves an ignored SIGINT ignored", "cli/tools.py",
      "  signal.signal(signal.SIGINT, signal.default_int_handler)", "",
      f"{X}test_serve_sends_the_types_and_headers_the_page_needs"),
    # Networks trained against flicker (issue 25).
    m("training's temporal weight ignored", "nets/train.py",
      'terms["total"] = terms["total"] + static.temporal_weight * terms["temporal"]',
      'terms["total"] = terms["total"] + terms["temporal"]',
      "test_nets.py::test_training_weighs_each_loss_term_by_its_own_option"),
    m("motion's rotation reversed", "nets/motion.py",
      "return jnp.stack([cy + (cos * y - sin * x) / motion.zoom,\n"
      "                    cx + (cos * x + sin * y) / motion.zoom])",
      "return jnp.stack([cy + (cos * y + sin * x) / motion.zoom,\n"
      "                    cx + (cos * x - sin * y) / motion.zoom])",
      "test_motion.py::test_the_moved_frame_puts_each_point_where_the_motion_takes_it",
      "test_motion.py::test_the_warp_is_opencvs_remap_by_the_motions_flow"),
    m("motion's key ignored", "nets/motion.py",
      "motion = random_motion(key=key, side=min(h, w))",
      "motion = random_motion(key=jax.random.key(0), side=min(h, w))",
      "test_motion.py::test_a_moved_pair_is_seeded_bounded_and_masked_where_frame_one_saw_nothing"),
    m("temporal term without the warp", "nets/motion.py",
      "return losses.temporal_loss(out_moved_HxWx3, warp(out_HxWx3, coords_2xHxW), mask_HxW)",
      "return losses.temporal_loss(out_moved_HxWx3, out_HxWx3, mask_HxW)",
      "test_motion.py::test_the_temporal_term_is_zero_for_a_network_that_moves_with_its_input"),
    m("video frames' flow ignored", "nets/motion.py",
      "return jnp.stack([rows + flow_HxWx2[..., 1], cols + flow_HxWx2[..., 0]])",
      "return jnp.stack([rows, cols])",
      "test_motion.py::test_flow_pairs_warp_the_frame_before_onto_the_frame"),
    m("train's --temporal-data ignored", "nets/train.py",
      "  pairs = (FlowPairs(config.temporal_data, crop=config.crop, batch=config.batch,\n"
      "                     seed=config.seed) if config.temporal_data else None)",
      "  pairs = None",
      "test_motion.py::test_training_on_video_frames_weighs_their_temporal_term_and_refuses_bad_flow"),
    # Tiles (issue 25).
    m("tiles normalised by their own statistics", "nets/tiles.py",
      "    if k < len(self.stats):\n      return self.stats[k]",
      "    if False:\n      return self.stats[k]",
      "test_tiles.py::test_tiled_equals_the_untiled_forward"),
    m("tiles' halo ignores the residual blocks", "nets/tiles.py",
      "radius = 4 + 1 + 2 + 2 * net.spec.residual_blocks * 4 + 2 + 1 + 4 + 4",
      "radius = 4 + 1 + 2 + 2 + 1 + 4",
      "test_tiles.py::test_tiled_equals_the_untiled_forward"),
    m("tile moments combined without the between-tile term", "nets/tiles.py",
      "self.m2 = self.m2 + m2 + delta ** 2 * self.n * n / total",
      "self.m2 = self.m2 + m2",
      "test_tiles.py::test_tiled_equals_the_untiled_forward"),
    m("AdaIN's tiles normalised by their own statistics", "nets/adain.py",
      "  if statistics is not None:\n    mean, var = statistics(F_NxHxWxC)",
      "  if False:\n    mean, var = statistics(F_NxHxWxC)",
      "test_tiles.py::test_tiled_adain_equals_the_untiled_forward"),
    m("apply's --tile ignored", "cli/networks.py",
      "  sides, tile = check_network_fits(stylizer, list(shapes.values()), args.size, args.batch,\n"
      "                                   args.tile)",
      "  sides, tile = check_network_fits(stylizer, list(shapes.values()), args.size, args.batch,\n"
      "                                   None)",
      "test_tiles.py::test_apply_tile_writes_the_untiled_image_and_refuses_bad_tiles"),
    m("--tile ignored by the objective", "objective.py",
      "  if spec.tile:\n    from jaxstyle import tiled\n    tiled.check_supported",
      "  if False:\n    from jaxstyle import tiled\n    tiled.check_supported",
      "test_tiled.py::test_tiled_float32_matches_within_1e4_and_the_program_convolves_crops"),
    m("tiled gradient without its second pass", "tiled.py",
      "  g_x = jax.lax.scan(body, g_x, (origins, owned))[0]", "",
      "test_tiled.py::test_tiled_targets_objective_and_gradient_are_the_untiled_ones_in_float64"),
    m("tiles' Grams count the halo too", "tiled.py",
      "  inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)",
      "  inside = (rows >= 0) & (cols >= 0)",
      "test_tiled.py::test_tiled_targets_objective_and_gradient_are_the_untiled_ones_in_float64"),
    m("tiled halo forgets the pools", "tiled.py",
      "      radius, step, block = radius + step, step * 2, spec.block",
      "      step, block = step * 2, spec.block",
      "test_tiled.py::test_the_receptive_field_sets_the_halo",
      "test_tiled.py::test_tiled_float32_matches_within_1e4_and_the_program_convolves_crops"),
]


def mutated(mutant: Mutant, text: str) -> str:
  """``text`` (the source of ``jaxstyle/{mutant.file}``) with the mutant's edits applied;
  ValueError unless each edit's ``old`` occurs exactly once (tests/test_mutants.py checks
  this for every mutant, so a refactor that moves a mutant's site fails the suite)."""
  for old, new in mutant.edits:
    if text.count(old) != 1:
      raise ValueError(f"mutant {mutant.name!r}: expected one {old!r} in jaxstyle/"
                       f"{mutant.file}, found {text.count(old)}; re-anchor it in "
                       "tests/mutants.py")
    text = text.replace(old, new)
  return text


def run(mutant: Mutant, scratch: Path) -> tuple[bool, str, float]:
  """Applies ``mutant`` to a fresh copy under ``scratch``; (caught, pytest's last line, seconds)."""
  copy = scratch / "main"
  shutil.rmtree(copy, ignore_errors=True)
  shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__",
                                                            "*.egg-info", "docs", "runs"))
  source = copy / "jaxstyle" / mutant.file
  try:
    source.write_text(mutated(mutant, source.read_text()))
  except ValueError as e:
    raise SystemExit(str(e)) from None
  env = {**os.environ, "PYTHONPATH": str(copy), "JAXSTYLE_CACHE_DIR": ""}
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                         *[f"tests/{t}" for t in mutant.tests]], cwd=copy, env=env,
                        capture_output=True, text=True)
  last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
  # Exit 1: tests ran and some failed. Anything else (collection errors, ...) is not a catch.
  return proc.returncode == 1, last, time.perf_counter() - start


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
  parser.add_argument("--list", action="store_true", help="list the mutants and exit")
  args = parser.parse_args(argv)
  if args.list:
    for mutant in MUTANTS:
      print(mutant.name)
    return 0
  chosen = [x for x in MUTANTS if not args.names or x.name in args.names]
  if len(chosen) != (len(args.names) or len(MUTANTS)):
    parser.error(f"unknown mutant in {args.names}; --list names them")
  with tempfile.TemporaryDirectory() as tmp:
    scratch = Path(tmp) / "a"
    scratch.mkdir()
    if (ROOT.parent / "shared").exists():  # Tests find the sample images at ../shared.
      (scratch / "shared").symlink_to(ROOT.parent / "shared")
    missed = 0
    print("| mutant | tests that must fail | caught | pytest says |\n|---|---|---|---|")
    for mutant in chosen:
      caught, last, seconds = run(mutant, scratch)
      missed += not caught
      tests = "<br>".join(f"`{t}`" for t in mutant.tests)
      print(f"| {mutant.name} | {tests} | {'yes' if caught else '**NO**'} | {last} "
            f"({seconds:.0f} s) |", flush=True)
  print(f"\n{len(chosen) - missed} of {len(chosen)} mutants caught")
  return 1 if missed else 0


if __name__ == "__main__":
  sys.exit(main())
