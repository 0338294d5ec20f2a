"""Correct alternatives for kwslab.quantize: other right answers the graded tests must accept
(numpy, torch's observers, torch.where, bit shifts, a code table for minifloats)."""
import textwrap

MODULE = "quantize"
KIND = "alternatives"


def V(name, target, code="", why="", replace=()):
    if isinstance(code, tuple):
        code = "\n".join(textwrap.dedent(c).strip("\n") for c in code)
    return dict(name=name, target=target, code=code, why=why, replace=replace)


VARIANTS = [
    V("range_shift", "quant_range", """
        half = 1 << (num_bits - 1)
        return (-half + 1 if narrow_range else -half), half - 1
    """, "bit shift"),
    V("qp_numpy", "choose_qparams", """
        import numpy as np
        lo, hi = x_min.numpy().astype(np.float32), x_max.numpy().astype(np.float32)
        eps = np.float32(SCALE_EPS)
        if symmetric:
            scale = np.maximum(np.maximum(np.abs(lo), np.abs(hi)) / np.float32((quant_max - quant_min) / 2), eps)
            return torch.from_numpy(np.asarray(scale, np.float32)), torch.zeros(lo.shape, dtype=torch.int32)
        lo, hi = np.minimum(lo, np.float32(0)), np.maximum(hi, np.float32(0))
        scale = np.maximum((hi - lo) / np.float32(quant_max - quant_min), eps).astype(np.float32)
        zero_point = np.clip(quant_min - np.round(lo / scale), quant_min, quant_max)
        return (torch.from_numpy(np.asarray(scale, np.float32)),
                torch.from_numpy(np.asarray(zero_point)).to(torch.int32))
    """, "numpy (np.round is half to even too)"),
    V("qp_torch_observer", "choose_qparams", """
        from torch.ao.quantization.observer import MinMaxObserver
        if symmetric:
            max_abs = torch.maximum(x_min.abs(), x_max.abs())
            scale = torch.clamp(max_abs / ((quant_max - quant_min) / 2), min=SCALE_EPS)
            return scale, torch.zeros_like(scale, dtype=torch.int32)
        if x_min.dim() == 0:
            observer = MinMaxObserver(quant_min=quant_min, quant_max=quant_max, dtype=torch.qint32)
            observer.min_val, observer.max_val = x_min, x_max
            scale, zero_point = observer.calculate_qparams()
            return scale.reshape(()).to(torch.float32), zero_point.reshape(()).to(torch.int32)
        x_min, x_max = torch.clamp(x_min, max=0.0), torch.clamp(x_max, min=0.0)
        scale = torch.clamp((x_max - x_min) / (quant_max - quant_min), min=SCALE_EPS)
        zero_point = torch.clamp(quant_min - torch.round(x_min / scale), quant_min, quant_max)
        return scale, zero_point.to(torch.int32)
    """, "torch.ao MinMaxObserver.calculate_qparams for per-tensor asymmetric"),
    V("q_numpy", "quantize", """
        import numpy as np
        q = np.round(x.detach().numpy() / scale.numpy()) + zero_point.numpy()
        return torch.from_numpy(np.clip(q, quant_min, quant_max).astype(np.int32))
    """, "numpy"),
    V("q_where", "quantize", """
        q = torch.round(x / scale).to(torch.int64) + zero_point
        q = torch.where(q < quant_min, torch.full_like(q, quant_min), q)
        q = torch.where(q > quant_max, torch.full_like(q, quant_max), q)
        return q.to(torch.int32)
    """, "integer arithmetic and torch.where"),
    V("dq_double", "dequantize", """
        return ((q.to(torch.float64) - zero_point.to(torch.float64)) * scale.to(torch.float64)).float()
    """, "float64 arithmetic, float32 result"),
    V("ste_where_forward", "FakeQuantizeSTE.forward", """
        q = torch.round(x / scale) + zero_point
        inside = (q >= quant_min) & (q <= quant_max)
        ctx.save_for_backward(inside)
        return torch.where(inside, q, q.clamp(quant_min, quant_max)).sub(zero_point).mul(scale)
    """, "torch.where"),
    V("ste_float_mask_backward", "FakeQuantizeSTE.backward", """
        (inside,) = ctx.saved_tensors
        return torch.where(inside, grad_output, torch.zeros_like(grad_output)), None, None, None, None
    """, "torch.where in backward"),
    V("wq_loop", "weight_qparams", """
        rows = w.movedim(axis, 0).reshape(w.shape[axis], -1)
        w_min = torch.stack([r.min() for r in rows])
        w_max = torch.stack([r.max() for r in rows])
        return choose_qparams(w_min, w_max, num_bits, symmetric=True)
    """, "loop over channels"),
    V("wq_observer", "weight_qparams", """
        from torch.ao.quantization.observer import PerChannelMinMaxObserver
        quant_min, quant_max = quant_range(num_bits, narrow_range=True)
        observer = PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.qint32, quant_min=quant_min,
                                            quant_max=quant_max, qscheme=torch.per_channel_symmetric)
        observer(w.to(torch.float32))
        scale, _ = observer.calculate_qparams()
        scale = torch.clamp(scale.to(torch.float32), min=SCALE_EPS)
        return scale, torch.zeros(scale.shape, dtype=torch.int32)
    """, "torch.ao PerChannelMinMaxObserver (symmetric, narrow range)"),
    V("mm_torch_lerp", "update_min_max", """
        batch_min, batch_max = torch.aminmax(x)
        if averaging_constant is None:
            return torch.min(running_min, batch_min), torch.max(running_max, batch_max)
        return (torch.lerp(running_min, batch_min, averaging_constant),
                torch.lerp(running_max, batch_max, averaging_constant))
    """, "torch.aminmax and torch.lerp"),
    V("mf_table", "minifloat_quantize", """
        E, M = exponent_bits, mantissa_bits
        codes = torch.arange(2 ** (E + M), dtype=torch.float64)
        e, m = torch.div(codes, 2 ** M, rounding_mode="floor"), codes % 2 ** M
        values = torch.where(e == 0, 2.0 ** (1 - bias) * m / 2 ** M,
                             2.0 ** (e - bias) * (1 + m / 2 ** M))  # ascending
        a = x.abs().to(torch.float64).clamp(max=values[-1].item())
        hi = torch.searchsorted(values, a).clamp(max=len(values) - 1)
        lo = (hi - 1).clamp(min=0)
        d_lo, d_hi = a - values[lo], values[hi] - a
        pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0))
        y = torch.where(pick_hi, values[hi], values[lo])
        return (torch.sign(x) * y).to(torch.float32).where(~torch.isnan(x), x)
    """, "table of every code, nearest value, ties to the even code"),
    V("qat_modules_dict", "prepare_qat", """
        model = copy.deepcopy(model)
        for name in list(model._modules):
            layer = model._modules[name]
            twin_type = QUANT_LAYERS.get(type(layer))
            if twin_type is not None:
                twin = twin_type.from_float(layer, num_bits=num_bits)
                twin.training = layer.training
                model._modules[name] = twin
        return model
    """, "through _modules and QUANT_LAYERS.get"),
    V("ptq_steps", "quantize_model_ptq", """
        folded = fold_batchnorm(model)
        qmodel = prepare_qat(folded, num_bits=num_bits).eval()
        return calibrate(qmodel, loader, num_batches=num_batches).eval()
    """, "named arguments, eval before and after"),
    V("ste_times_inverse_scale", "FakeQuantizeSTE.forward", """
        inv_scale = 1.0 / scale
        q = torch.round(x * inv_scale) + zero_point
        ctx.save_for_backward((q >= quant_min) & (q <= quant_max))
        return (torch.clamp(q, quant_min, quant_max) - zero_point) * scale
    """, "x * (1 / scale), as torch's own fake quantization computes it"),
    V("mm_observer", "update_min_max", """
        from torch.ao.quantization.observer import MinMaxObserver, MovingAverageMinMaxObserver
        if averaging_constant is None:
            observer = MinMaxObserver()
        else:
            observer = MovingAverageMinMaxObserver(averaging_constant=averaging_constant)
        observer.min_val.copy_(running_min)
        observer.max_val.copy_(running_max)
        observer(x)
        return observer.min_val.clone(), observer.max_val.clone()
    """, "torch.ao MinMaxObserver / MovingAverageMinMaxObserver"),
    V("qat_constructor", "prepare_qat", """
        model = copy.deepcopy(model)
        for name, layer in list(model.named_children()):
            if type(layer) is nn.Conv2d:
                twin = QuantConv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                   stride=layer.stride, padding=layer.padding,
                                   dilation=layer.dilation, groups=layer.groups,
                                   bias=layer.bias is not None, padding_mode=layer.padding_mode,
                                   num_bits=num_bits)
            elif type(layer) is nn.Linear:
                twin = QuantLinear(layer.in_features, layer.out_features,
                                   bias=layer.bias is not None, num_bits=num_bits)
            else:
                continue
            with torch.no_grad():
                twin.weight.copy_(layer.weight)
                if layer.bias is not None:
                    twin.bias.copy_(layer.bias)
            setattr(model, name, twin.train(layer.training))
        return model
    """, "constructors and weight copies instead of from_float"),
]
