namespace Histo.Mil;

/// <summary>MIL models by name (<c>histo train --model</c>), each built for an input size and a number of outputs.</summary>
public static class MilRegistry
{
    public sealed record Entry(string Name, string Description, Func<int, int, MilModel> Create);

    public static IReadOnlyList<Entry> All { get; } =
    [
        new("abmil", "attention MIL (Ilse et al. 2018)", (d, c) => new AttentionMil(d, c, gated: false)),
        new("gated-abmil", "gated attention MIL (Ilse et al. 2018)", (d, c) => new AttentionMil(d, c, gated: true)),
        new("clam-sb", "CLAM single branch with instance clustering (Lu et al. 2021)", (d, c) => new ClamSb(d, c)),
        new("dsmil", "dual-stream MIL (Li et al. 2021)", (d, c) => new DsMil(d, c)),
        new("mean", "mean pooling", (d, c) => new PoolingMil(d, c, max: false)),
        new("max", "max pooling", (d, c) => new PoolingMil(d, c, max: true)),
    ];

    public static MilModel Create(string name, int inputDim, int outputs) =>
        (All.FirstOrDefault(e => e.Name == name) ?? throw new HistoException($"unknown MIL model '{name}'; choose one of {string.Join(", ", All.Select(e => e.Name))}"))
        .Create(inputDim, outputs);
}
