using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// Copies named tensors into a module's parameters and buffers, reporting every missing, unexpected or
/// mis-shaped tensor by name and shape, never skipping one silently.
/// </summary>
public static class WeightLoading
{
    /// <param name="source">What the tensors came from, for messages (a file name).</param>
    /// <param name="strict">Whether a module tensor without a source tensor (or the reverse) is an error.</param>
    /// <param name="ignore">Names that may be absent on either side (e.g. BatchNorm's num_batches_tracked, a classifier head).</param>
    public static void Load(nn.Module module, IReadOnlyDictionary<string, Tensor> tensors, string source, bool strict = true, Func<string, bool>? ignore = null)
    {
        ignore ??= _ => false;
        var targets = module.state_dict();
        var problems = new List<string>();
        foreach (var (name, target) in targets)
        {
            if (!tensors.TryGetValue(name, out var value))
            {
                if (strict && !ignore(name)) problems.Add($"missing {name} {Shape(target)}");
                continue;
            }
            if (!value.shape.SequenceEqual(target.shape)) { problems.Add($"{name}: checkpoint has {Shape(value)}, model needs {Shape(target)}"); continue; }
        }
        foreach (var name in tensors.Keys)
            if (!targets.ContainsKey(name) && strict && !ignore(name)) problems.Add($"unexpected {name} {Shape(tensors[name])}");
        if (problems.Count > 0)
            throw new HistoException($"{source}: weights do not fit {module.GetName()}: {string.Join("; ", problems.Take(12))}{(problems.Count > 12 ? $"; and {problems.Count - 12} more" : "")}");
        using (no_grad())
            foreach (var (name, target) in targets)
                if (tensors.TryGetValue(name, out var value)) target.copy_(value.to_type(target.dtype));
    }

    static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
