namespace Histo.Tests;

/// <summary>
/// Tests that assert bit-identical training runs (resume = straight run). Network initialisation draws from
/// TorchSharp's process-wide generator, which tests running in parallel would also draw from; this
/// collection runs alone.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchRandomCollection
{
    public const string Name = "Torch global random generator";
}
