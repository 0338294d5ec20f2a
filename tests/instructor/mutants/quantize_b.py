"""Mutant set B for kwslab.quantize: plausible student mistakes, written from the docstrings
and the solution only (independently of set A). Each entry replaces one solution block."""

MODULE = "quantize"
KIND = "mutants"


def V(name, target, code="", why="", replace=()):
    return dict(name=name, target=target, code=code, why=why, replace=replace)


VARIANTS = [
    # ---------------------------------------------------------------- quant_range
    V("range_unsigned", "quant_range", """
        quant_max = 2 ** num_bits - 1
        return (1 if narrow_range else 0), quant_max
    """, "unsigned codes"),
    V("range_ignores_narrow", "quant_range", """
        quant_max = 2 ** (num_bits - 1) - 1
        return -quant_max - 1, quant_max
    """, "narrow_range ignored"),
    V("range_narrow_drops_top", "quant_range", """
        quant_min, quant_max = -2 ** (num_bits - 1), 2 ** (num_bits - 1) - 1
        return quant_min, quant_max - 1 if narrow_range else quant_max
    """, "narrow range drops the top code"),
    V("range_hardcoded_8bit", "quant_range", """
        return (-127 if narrow_range else -128), 127
    """, "num_bits ignored"),
    V("range_off_by_one", "quant_range", """
        quant_max = 2 ** (num_bits - 1)
        return (-quant_max + 1 if narrow_range else -quant_max), quant_max
    """, "quant_max = 2**(b-1)"),
    # ---------------------------------------------------------------- choose_qparams
    V("qp_no_widen_to_zero", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "range not widened to include 0"),
    V("qp_widen_min_only", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min = torch.clamp(x_min, max=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "only x_min widened (all-negative range breaks)"),
    V("qp_zero_point_unclamped", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = quant_min - torch.round(x_min / scale)
        return scale, zero_point.to(torch.int32)
    """, "no widening and no clamp of zero_point"),
    V("qp_zero_point_truncated", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - x_min / scale, quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "zero_point truncated by the int cast instead of rounded"),
    V("qp_zero_point_round_half_up", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.floor(x_min / scale + 0.5), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "round half up in zero_point"),
    V("qp_scale_over_256", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min + 1), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "divides by the number of codes (256)"),
    V("qp_symmetric_over_qmax", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / quant_max, min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "symmetric scale = max_abs / quant_max (wrong for the full range)"),
    V("qp_symmetric_uses_x_max", "choose_qparams", """
        if symmetric:
            scale = torch.clamp(x_max.abs() / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "symmetric scale from |x_max| only"),
    V("qp_no_eps", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = max_abs / ((quant_max - quant_min) / 2)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = (x_max - x_min) / (quant_max - quant_min)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "no SCALE_EPS guard"),
    V("qp_eps_too_small", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=1e-9)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=1e-9)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "own epsilon 1e-9 instead of SCALE_EPS"),
    V("qp_eps_too_large", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=1e-6)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=1e-6)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "own epsilon 1e-6 instead of SCALE_EPS"),
    V("qp_zero_point_float", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point
    """, "zero_point left float32"),
    V("qp_per_tensor_collapse", "choose_qparams", """
        if symmetric:
            max_abs = torch.maximum(x_min.abs().max(), x_max.abs().max())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            scale = scale.expand(x_min.shape).clone()
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "symmetric per-channel collapses to one max over all channels"),
    # ---------------------------------------------------------------- quantize / dequantize
    V("q_no_clamp", "quantize", """
        return (torch.round(x / scale) + zero_point).to(torch.int32)
    """, "no clamp"),
    V("q_truncate", "quantize", """
        q = (x / scale).to(torch.int32) + zero_point
        return torch.clamp(q, quant_min, quant_max).to(torch.int32)
    """, "int cast truncates toward 0"),
    V("q_round_half_up", "quantize", """
        q = torch.floor(x / scale + 0.5) + zero_point
        return torch.clamp(q, quant_min, quant_max).to(torch.int32)
    """, "round half up"),
    V("q_round_after_zero_point", "quantize", """
        q = torch.round(x / scale + zero_point)
        return torch.clamp(q, quant_min, quant_max).to(torch.int32)
    """, "rounds x/scale + zero_point (differs at ties with an odd zero_point)"),
    V("q_clamp_before_zero_point", "quantize", """
        q = torch.clamp(torch.round(x / scale), quant_min, quant_max) + zero_point
        return q.to(torch.int32)
    """, "clamp before adding zero_point"),
    V("q_float_codes", "quantize", """
        q = torch.round(x / scale) + zero_point
        return torch.clamp(q, quant_min, quant_max)
    """, "codes returned as float"),
    V("q_times_scale", "quantize", """
        q = torch.round(x * scale) + zero_point
        return torch.clamp(q, quant_min, quant_max).to(torch.int32)
    """, "multiplies by scale"),
    V("dq_wrong_order", "dequantize", """
        return q.to(torch.float32) * scale - zero_point
    """, "q * scale - zero_point"),
    V("dq_plus_zero_point", "dequantize", """
        return (q.to(torch.int32) + zero_point).to(torch.float32) * scale
    """, "adds zero_point"),
    V("dq_int8_wraps", "dequantize", """
        return (q - zero_point).to(torch.float32) * scale
    """, "subtracts in q's dtype: int8 codes wrap around"),
    V("dq_float64", "dequantize", """
        return (q.to(torch.int64) - zero_point).to(torch.float64) * scale
    """, "returns float64"),
    # ---------------------------------------------------------------- FakeQuantizeSTE
    V("ste_unclipped", "FakeQuantizeSTE.backward", """
        return grad_output, None, None, None, None
    """, "plain STE: gradient also where clipped"),
    V("ste_ends_excluded", "FakeQuantizeSTE.forward", """
        q = torch.round(x / scale) + zero_point
        ctx.save_for_backward((q > quant_min) & (q < quant_max))
        return (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    """, "range ends count as clipped"),
    V("ste_mask_before_round", "FakeQuantizeSTE.forward", """
        q = torch.round(x / scale) + zero_point
        v = x / scale + zero_point
        ctx.save_for_backward((v >= quant_min) & (v <= quant_max))
        return (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    """, "clip mask from the unrounded value"),
    V("ste_mask_after_clamp", "FakeQuantizeSTE.forward", """
        q = torch.clamp(torch.round(x / scale) + zero_point, quant_min, quant_max)
        ctx.save_for_backward((q >= quant_min) & (q <= quant_max))
        return (q - zero_point) * scale
    """, "mask taken after the clamp: always inside"),
    V("ste_no_clamp_forward", "FakeQuantizeSTE.forward", """
        q = torch.round(x / scale) + zero_point
        ctx.save_for_backward((q >= quant_min) & (q <= quant_max))
        return (q - zero_point) * scale
    """, "forward does not clamp"),
    V("ste_forgets_zero_point", "FakeQuantizeSTE.forward", """
        q = torch.round(x / scale) + zero_point
        ctx.save_for_backward((q >= quant_min) & (q <= quant_max))
        return torch.clamp(q, quant_min, quant_max) * scale
    """, "dequantizes without subtracting zero_point"),
    V("ste_mask_or", "FakeQuantizeSTE.forward", """
        q = torch.round(x / scale) + zero_point
        ctx.save_for_backward((q >= quant_min) | (q <= quant_max))
        return (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    """, "| instead of &"),
    # ---------------------------------------------------------------- weight_qparams
    V("wq_per_tensor", "weight_qparams", """
        c = w.shape[axis]
        return choose_qparams(w.min().expand(c), w.max().expand(c), num_bits, symmetric=True)
    """, "one range for the whole tensor"),
    V("wq_num_bits_dropped", "weight_qparams", """
        w_min = w.amin(dim=dims) if dims else w
        w_max = w.amax(dim=dims) if dims else w
        return choose_qparams(w_min, w_max, symmetric=True)
    """, "num_bits not passed on"),
    V("wq_asymmetric", "weight_qparams", """
        w_min = w.amin(dim=dims) if dims else w
        w_max = w.amax(dim=dims) if dims else w
        return choose_qparams(w_min, w_max, num_bits)
    """, "asymmetric weights"),
    V("wq_full_range", "weight_qparams", """
        w_min = w.amin(dim=dims) if dims else w
        w_max = w.amax(dim=dims) if dims else w
        return choose_qparams(w_min, w_max, num_bits, symmetric=True, narrow_range=False)
    """, "full range (max_abs / 127.5)"),
    V("wq_axis_ignored", "weight_qparams", """
        flat = w.flatten(1) if w.dim() > 1 else w[:, None]
        return choose_qparams(flat.amin(1), flat.amax(1), num_bits, symmetric=True)
    """, "always channel axis 0"),
    V("wq_positive_only", "weight_qparams", """
        w_max = w.amax(dim=dims) if dims else w
        return choose_qparams(torch.zeros_like(w_max), w_max, num_bits, symmetric=True)
    """, "range from the largest value only (negatives ignored)"),
    V("wq_reduce_dim1_only", "weight_qparams", """
        w_min = w.amin(dim=1) if w.dim() > 1 else w
        w_max = w.amax(dim=1) if w.dim() > 1 else w
        while w_min.dim() > 1:
            w_min, w_max = w_min[..., 0], w_max[..., 0]
        return choose_qparams(w_min, w_max, num_bits, symmetric=True)
    """, "reduces over input channels only, keeps the first kernel tap"),
    # ---------------------------------------------------------------- update_min_max
    V("mm_always_average", "update_min_max", """
        batch_min, batch_max = x.min(), x.max()
        c = averaging_constant if averaging_constant is not None else 0.01
        if not torch.isfinite(running_min):
            return batch_min, batch_max
        return running_min + c * (batch_min - running_min), running_max + c * (batch_max - running_max)
    """, "calibration also averages"),
    V("mm_weights_swapped", "update_min_max", """
        batch_min, batch_max = x.min(), x.max()
        if averaging_constant is None:
            return torch.minimum(running_min, batch_min), torch.maximum(running_max, batch_max)
        c = averaging_constant
        return batch_min + c * (running_min - batch_min), batch_max + c * (running_max - batch_max)
    """, "c weights the running value"),
    V("mm_calibration_replaces", "update_min_max", """
        batch_min, batch_max = x.min(), x.max()
        if averaging_constant is None:
            return batch_min, batch_max
        c = averaging_constant
        return running_min + c * (batch_min - running_min), running_max + c * (batch_max - running_max)
    """, "calibration keeps only the last batch"),
    V("mm_max_typo", "update_min_max", """
        batch_min, batch_max = x.min(), x.max()
        if averaging_constant is None:
            return torch.minimum(running_min, batch_min), torch.minimum(running_max, batch_max)
        c = averaging_constant
        return running_min + c * (batch_min - running_min), running_max + c * (batch_max - running_max)
    """, "minimum for the running max"),
    V("mm_python_floats", "update_min_max", """
        batch_min, batch_max = x.min().item(), x.max().item()
        if averaging_constant is None:
            return min(running_min.item(), batch_min), max(running_max.item(), batch_max)
        c = averaging_constant
        return (running_min.item() + c * (batch_min - running_min.item()),
                running_max.item() + c * (batch_max - running_max.item()))
    """, "Python floats instead of 0-d tensors"),
    # ---------------------------------------------------------------- minifloat_quantize
    V("mf_no_subnormals", "minifloat_quantize", """
        largest = 2.0 ** (2 ** exponent_bits - 1 - bias) * (2 - 2.0 ** -mantissa_bits)
        _, e = torch.frexp(x)
        step = torch.pow(2.0, (e - 1 - mantissa_bits).to(torch.float32))
        return torch.clamp(torch.round(x / step) * step, -largest, largest)
    """, "no subnormal floor on the exponent"),
    V("mf_ocp_e4m3_max", "minifloat_quantize", """
        largest = 2.0 ** (2 ** exponent_bits - 1 - bias) * (2 - 2.0 ** (1 - mantissa_bits))
        _, e = torch.frexp(x)
        k = torch.clamp(e - 1, min=1 - bias)
        step = torch.pow(2.0, (k - mantissa_bits).to(torch.float32))
        return torch.clamp(torch.round(x / step) * step, -largest, largest)
    """, "top mantissa code reserved (448 for E4M3)"),
    V("mf_largest_no_mantissa", "minifloat_quantize", """
        largest = 2.0 ** (2 ** exponent_bits - 1 - bias)
        _, e = torch.frexp(x)
        k = torch.clamp(e - 1, min=1 - bias)
        step = torch.pow(2.0, (k - mantissa_bits).to(torch.float32))
        return torch.clamp(torch.round(x / step) * step, -largest, largest)
    """, "largest = 2**emax"),
    V("mf_k_off_by_one", "minifloat_quantize", """
        largest = 2.0 ** (2 ** exponent_bits - 1 - bias) * (2 - 2.0 ** -mantissa_bits)
        _, e = torch.frexp(x)
        k = torch.clamp(e, min=1 - bias)
        step = torch.pow(2.0, (k - mantissa_bits).to(torch.float32))
        return torch.clamp(torch.round(x / step) * step, -largest, largest)
    """, "frexp exponent used as floor(log2)"),
    V("mf_round_half_away", "minifloat_quantize", """
        largest = 2.0 ** (2 ** exponent_bits - 1 - bias) * (2 - 2.0 ** -mantissa_bits)
        _, e = torch.frexp(x)
        k = torch.clamp(e - 1, min=1 - bias)
        step = torch.pow(2.0, (k - mantissa_bits).to(torch.float32))
        y = torch.sign(x) * torch.floor(x.abs() / step + 0.5) * step
        return torch.clamp(y, -largest, largest)
    """, "ties away from zero"),
    V("mf_no_saturation", "minifloat_quantize", """
        _, e = torch.frexp(x)
        k = torch.clamp(e - 1, min=1 - bias)
        step = torch.pow(2.0, (k - mantissa_bits).to(torch.float32))
        return torch.round(x / step) * step
    """, "no saturation"),
    V("mf_default_bias_in_largest", "minifloat_quantize", """
        default_bias = 2 ** (exponent_bits - 1) - 1
        largest = 2.0 ** (2 ** exponent_bits - 1 - default_bias) * (2 - 2.0 ** -mantissa_bits)
        _, e = torch.frexp(x)
        k = torch.clamp(e - 1, min=1 - bias)
        step = torch.pow(2.0, (k - mantissa_bits).to(torch.float32))
        return torch.clamp(torch.round(x / step) * step, -largest, largest)
    """, "custom bias ignored in the saturation value"),
    V("mf_default_bias_in_subnormal", "minifloat_quantize", """
        largest = 2.0 ** (2 ** exponent_bits - 1 - bias) * (2 - 2.0 ** -mantissa_bits)
        _, e = torch.frexp(x)
        k = torch.clamp(e - 1, min=2 - 2 ** (exponent_bits - 1))
        step = torch.pow(2.0, (k - mantissa_bits).to(torch.float32))
        return torch.clamp(torch.round(x / step) * step, -largest, largest)
    """, "custom bias ignored in the subnormal range"),
    # ---------------------------------------------------------------- prepare_qat
    V("qat_in_place", "prepare_qat", """
        for name, layer in list(model.named_children()):
            if type(layer) in QUANT_LAYERS:
                setattr(model, name, QUANT_LAYERS[type(layer)].from_float(layer, num_bits))
        return model
    """, "modifies the input model"),
    V("qat_num_bits_dropped", "prepare_qat", """
        model = copy.deepcopy(model)
        for name, layer in list(model.named_children()):
            if type(layer) in QUANT_LAYERS:
                setattr(model, name, QUANT_LAYERS[type(layer)].from_float(layer))
        return model
    """, "num_bits not passed to from_float"),
    V("qat_isinstance", "prepare_qat", """
        model = copy.deepcopy(model)
        for name, layer in list(model.named_children()):
            for float_type, quant_type in QUANT_LAYERS.items():
                if isinstance(layer, float_type):
                    setattr(model, name, quant_type.from_float(layer, num_bits))
                    break
        return model
    """, "isinstance: subclasses (and already quantized layers) are converted"),
    V("qat_conv_only", "prepare_qat", """
        model = copy.deepcopy(model)
        for name, layer in list(model.named_children()):
            if type(layer) is nn.Conv2d:
                setattr(model, name, QuantConv2d.from_float(layer, num_bits))
        return model
    """, "Linear layers left float"),
    V("qat_always_train", "prepare_qat", """
        model = copy.deepcopy(model)
        for name, layer in list(model.named_children()):
            if type(layer) in QUANT_LAYERS:
                setattr(model, name, QUANT_LAYERS[type(layer)].from_float(layer, num_bits))
        return model.train()
    """, "returns the model in train mode"),
    V("qat_always_eval", "prepare_qat", """
        model = copy.deepcopy(model)
        for name, layer in list(model.named_children()):
            if type(layer) in QUANT_LAYERS:
                setattr(model, name, QUANT_LAYERS[type(layer)].from_float(layer, num_bits))
        return model.eval()
    """, "returns the model in eval mode"),
    V("qat_new_layers_train_mode", "prepare_qat", """
        model = copy.deepcopy(model)
        for name, layer in list(model.named_children()):
            if type(layer) in QUANT_LAYERS:
                setattr(model, name, QUANT_LAYERS[type(layer)].from_float(layer, num_bits).train())
        return model
    """, "new layers in train mode whatever the input's mode"),
    # ---------------------------------------------------------------- quantize_model_ptq
    V("ptq_no_fold", "quantize_model_ptq", """
        qmodel = prepare_qat(model, num_bits)
        calibrate(qmodel, loader, num_batches)
        return qmodel.eval()
    """, "BatchNorm not folded"),
    V("ptq_num_bits_dropped", "quantize_model_ptq", """
        qmodel = prepare_qat(fold_batchnorm(model))
        calibrate(qmodel, loader, num_batches)
        return qmodel.eval()
    """, "num_bits not passed on"),
    V("ptq_all_batches", "quantize_model_ptq", """
        qmodel = prepare_qat(fold_batchnorm(model), num_bits)
        calibrate(qmodel, loader)
        return qmodel.eval()
    """, "num_batches not passed on"),
    V("ptq_fold_after_prepare", "quantize_model_ptq", """
        qmodel = fold_batchnorm(prepare_qat(model, num_bits))
        calibrate(qmodel, loader, num_batches)
        return qmodel.eval()
    """, "folds after prepare_qat: folded convs lose their quantization"),
    V("ptq_train_mode_observe", "quantize_model_ptq", """
        qmodel = prepare_qat(fold_batchnorm(model), num_bits).train()
        with torch.no_grad():
            for x in _batches(loader, num_batches):
                qmodel(x)
        return qmodel.eval()
    """, "observes in train mode: moving average instead of min/max"),
    V("ptq_left_train_mode", "quantize_model_ptq", """
        qmodel = prepare_qat(fold_batchnorm(model), num_bits)
        calibrate(qmodel, loader, num_batches)
        return qmodel.train()
    """, "returned in train mode"),
]
