using System.Text.Json;
using Histo.IO;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// The one resume scheme of Histo's epoch-based training runs (histo pretrain, histo clip-train): after every epoch the
/// run folder gets <c>checkpoint.safetensors</c> (the networks' tensors, by name), <c>optimizer.bin</c> (AdamW's moments)
/// and, last, <c>state.json</c> (the epoch and what the recipe needs to continue), each written atomically; a run whose
/// <c>state.json</c> exists resumes after that epoch with the same schedules, so a killed run loses at most one epoch.
/// </summary>
public static class EpochCheckpoint
{
    public const string StateFile = "state.json", TensorsFile = "checkpoint.safetensors", OptimizerFile = "optimizer.bin";

    public static bool Exists(string runDir) => File.Exists(Path.Combine(runDir, StateFile));

    public static void Save<TState>(string runDir, IReadOnlyDictionary<string, Tensor> tensors, AdamW optimizer, TState state)
    {
        AtomicFile.Write(Path.Combine(runDir, TensorsFile), tmp => Safetensors.SaveStateDict(tmp, tensors.ToDictionary()));
        AtomicFile.Write(Path.Combine(runDir, OptimizerFile), tmp => optimizer.Save(tmp));
        AtomicFile.WriteAllText(Path.Combine(runDir, StateFile), JsonSerializer.Serialize(state)); // last: marks the epoch done
    }

    /// <summary>The saved state, with the saved tensors copied into <paramref name="tensors"/> (same names) and the optimizer
    /// restored; null when the run has no finished epoch.</summary>
    public static TState? Load<TState>(string runDir, IReadOnlyDictionary<string, Tensor> tensors, AdamW optimizer) where TState : class
    {
        if (!Exists(runDir)) return null;
        var state = JsonSerializer.Deserialize<TState>(File.ReadAllText(Path.Combine(runDir, StateFile)))
            ?? throw new HistoException($"{Path.Combine(runDir, StateFile)}: empty; remove the run folder or use --overwrite");
        var saved = Safetensors.LoadStateDict(Path.Combine(runDir, TensorsFile), null!);
        try
        {
            using (no_grad())
                foreach (var (name, t) in tensors)
                {
                    if (!saved.TryGetValue(name, out var value))
                        throw new HistoException($"{Path.Combine(runDir, TensorsFile)}: no '{name}'; the run was made by another "
                            + "version or recipe; use --overwrite or another -o");
                    t.copy_(value);
                }
        }
        finally
        {
            foreach (var t in saved.Values) t.Dispose();
        }
        optimizer.Load(Path.Combine(runDir, OptimizerFile));
        return state;
    }
}
