using System.Text.Json;

namespace Histo.Models;

/// <summary>
/// Where a lab keeps its gated weights, configured once: a JSON object from encoder name to weights file, as TRIDENT's
/// <c>local_ckpts.json</c> (<c>{"uni": "/models/uni/pytorch_model.bin", ...}</c>), named by <c>--weights-config FILE</c> or
/// the <see cref="Variable"/> environment variable. <c>--weights FILE</c> wins over it.
/// </summary>
public static class WeightsConfig
{
    public const string Variable = "HISTO_WEIGHTS_CONFIG";

    /// <summary>The configured weights of <paramref name="encoder"/>, or null; a named but broken config is an error.</summary>
    /// <param name="configFile">The --weights-config file; null: the environment variable's, if set.</param>
    public static string? Resolve(string encoder, string? configFile = null)
    {
        configFile ??= Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(configFile)) return null;
        if (!File.Exists(configFile)) throw new HistoException($"{configFile}: weights config not found (--weights-config or {Variable})");
        Dictionary<string, string>? map;
        try { map = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(configFile)); }
        catch (JsonException e)
        {
            throw new HistoException($"{configFile}: not a JSON object of encoder name to weights file ({e.Message}); write e.g. "
                + "{\"uni\": \"/models/uni/pytorch_model.bin\"}", e);
        }
        if (map is null || !map.TryGetValue(encoder, out var path)) return null;
        // Relative paths are relative to the config file, so a lab's folder of weights can move as a whole.
        path = Path.GetFullPath(path, Path.GetDirectoryName(Path.GetFullPath(configFile))!);
        if (!File.Exists(path)) throw new HistoException($"{configFile}: the weights of {encoder}, {path}, do not exist");
        return path;
    }
}
