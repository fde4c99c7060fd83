using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// The precision an encoder runs in: <c>--precision auto</c> (the default) takes the row's default, bf16 only where the CPU
/// has bf16 matrix instructions (AVX-512-BF16 or AMX; elsewhere bf16 is emulated and slower than fp32); fp32 and bf16 force it.
/// Features are float32 either way.
/// </summary>
public static class ComputePrecision
{
    /// <summary>Whether /proc/cpuinfo lists avx512_bf16 or amx_bf16 (false off Linux).</summary>
    public static bool CpuHasBf16 { get; } = ReadCpuFlags().Overlaps(["avx512_bf16", "amx_bf16"]);

    static HashSet<string> ReadCpuFlags()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
            return line is null ? [] : [.. line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)];
        }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }

    /// <param name="option">"auto" (or null), "fp32" or "bf16".</param>
    /// <param name="encoder">The registered encoder's name, or a checkpoint path (fp32 under auto).</param>
    public static ScalarType Resolve(string? option, string encoder) => option switch
    {
        null or "auto" => EncoderRegistry.All.FirstOrDefault(e => e.Name == encoder)?.DefaultPrecision == ScalarType.BFloat16
            && CpuHasBf16 ? ScalarType.BFloat16 : ScalarType.Float32,
        "fp32" => ScalarType.Float32,
        "bf16" => ScalarType.BFloat16,
        _ => throw new UsageException($"--precision '{option}' must be auto, fp32 or bf16"),
    };

    public static string Name(ScalarType type) => type == ScalarType.BFloat16 ? "bf16" : "fp32";
}
