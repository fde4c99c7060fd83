namespace Histo.Mil;

/// <summary>MIL models by name (<c>histo train --model</c>), each built for an input size, a number of outputs and the task's number
/// of classes.</summary>
public static class MilRegistry
{
    /// <param name="Name">The name <c>--model</c> takes.</param>
    /// <param name="Description">One line for help texts.</param>
    /// <param name="Create">(input size, model outputs, task classes) to a model; outputs differ from classes for ordinal heads.</param>
    /// <param name="PermutationInvariant">Whether the bag's instance order leaves the output unchanged (TransMIL's PPEG reads it).</param>
    public sealed record Entry(string Name, string Description, Func<int, int, int, MilModel> Create, bool PermutationInvariant = true);

    public static IReadOnlyList<Entry> All { get; } =
    [
        new("abmil", "attention MIL (Ilse et al. 2018)", (d, o, _) => new AttentionMil(d, o, gated: false)),
        new("gated-abmil", "gated attention MIL (Ilse et al. 2018)", (d, o, _) => new AttentionMil(d, o, gated: true)),
        // CLAM's main.py: subtyping (out-of-class instance branches) for the multi-class task, not for tumour vs normal.
        new("clam-sb", "CLAM single branch with instance clustering (Lu et al. 2021)", (d, o, k) => new ClamSb(d, o, subtyping: k > 2)),
        new("dsmil", "dual-stream MIL (Li et al. 2021)", (d, o, _) => new DsMil(d, o)),
        new("mean", "mean pooling", (d, o, _) => new PoolingMil(d, o, max: false)),
        new("max", "max pooling", (d, o, _) => new PoolingMil(d, o, max: true)),
        new("transmil", "TransMIL, Nystrom-attention transformer with PPEG (Shao et al. 2021); not permutation-invariant",
            (d, o, _) => new TransMil(d, o), PermutationInvariant: false),
    ];

    /// <param name="name">A name from <see cref="All"/>.</param>
    /// <param name="inputDim">Instance feature size.</param>
    /// <param name="outputs">Logits the head needs (<see cref="MilHead.ModelOutputs"/>).</param>
    /// <param name="classes">The task's classes (default: <paramref name="outputs"/>, as for the softmax head).</param>
    public static MilModel Create(string name, int inputDim, int outputs, int? classes = null) =>
        (All.FirstOrDefault(e => e.Name == name)
            ?? throw new UsageException($"unknown MIL model '{name}'; choose one of {string.Join(", ", All.Select(e => e.Name))}"))
        .Create(inputDim, outputs, classes ?? outputs);
}
