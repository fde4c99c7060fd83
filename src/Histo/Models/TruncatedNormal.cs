using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// Truncated normal initialisation N(mean, std) restricted to [mean - 2 std, mean + 2 std], by redrawing
/// the values outside (PyTorch's trunc_normal_ with a = -2 std, b = 2 std, as timm and DINO use it).
/// TorchSharp 0.107's init.trunc_normal_ returned values with a standard deviation near 1e-9 here (measured),
/// which left freshly built ViTs with constant outputs.
/// </summary>
public static class TruncatedNormal
{
    public static void Fill(Tensor tensor, double std, double mean = 0)
    {
        using var _ = no_grad();
        tensor.normal_(mean, std);
        for (int round = 0; round < 100; round++)
        {
            // Each round's temporaries are the size of the tensor: freed at once, or building UNI (ViT-L) held 22 GB of them.
            using var scope = NewDisposeScope();
            using TorchSharp.Scalar minusMean = (-mean).ToScalar(), limit = (2 * std).ToScalar();
            var outside = tensor.add(minusMean, Models.KeptScalars.One).abs().gt(limit);
            if (!outside.any().item<bool>()) return;
            var redraw = empty_like(tensor).normal_(mean, std);
            tensor.copy_(where(outside, redraw, tensor));
        }
        using Scalar low = (mean - 2 * std).ToScalar(), high = (mean + 2 * std).ToScalar();
        tensor.clamp_(low, high);
    }
}
