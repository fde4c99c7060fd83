using TorchSharp;
using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// Reads a state dict from safetensors (Hugging Face, timm) or a PyTorch <c>torch.save(state_dict)</c> file
/// (torchvision, DINO) through TorchSharp.PyBridge, and normalises its names: wrapper prefixes that
/// training code adds (<c>module.</c>, <c>model.</c>, <c>backbone.</c>, DINO's <c>teacher.backbone.</c>)
/// are stripped, so a backbone's own names remain.
/// </summary>
public static class Checkpoint
{
    static readonly string[] WrapperPrefixes = ["module.", "model.", "teacher.", "student.", "backbone.", "encoder.", "vit."];

    public static Dictionary<string, Tensor> Read(string path)
    {
        if (!File.Exists(path)) throw new HistoException($"{path}: checkpoint not found; check the path");
        Dictionary<string, Tensor> raw;
        try
        {
            raw = path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)
                ? TorchSharp.PyBridge.Safetensors.LoadStateDict(path, null!)
                : TensorsOf(TorchSharp.PyBridge.PyTorchUnpickler.UnpickleStateDict(path));
        }
        catch (Exception e) when (e is not HistoException)
        {
            throw new HistoException($"{path}: not a readable safetensors or PyTorch state dict ({e.Message}); save the state_dict (torch.save(model.state_dict(), path)) or use safetensors", e);
        }
        return StripPrefixes(raw);
    }

    /// <summary>Keys under which training code saves the state dict in a larger checkpoint (timm, TransPath, DINO).</summary>
    static readonly string[] StateDictKeys = ["state_dict", "model", "teacher"];

    /// <summary>
    /// The tensors of an unpickled dict; a checkpoint that holds none at its top level but the state dict under a training
    /// script's key (<c>torch.save({'model': model.state_dict()})</c>, as CTransPath's) gives that dict's.
    /// </summary>
    static Dictionary<string, Tensor> TensorsOf(System.Collections.IDictionary dict)
    {
        var tensors = dict.Cast<System.Collections.DictionaryEntry>().Where(e => e.Value is Tensor)
            .ToDictionary(e => (string)e.Key, e => (Tensor)e.Value!);
        if (tensors.Count > 0) return tensors;
        foreach (var key in StateDictKeys)
            if (dict.Contains(key) && dict[key] is System.Collections.IDictionary inner) return TensorsOf(inner);
        return tensors;
    }

    /// <summary>Removes wrapper prefixes that every key shares, one at a time.</summary>
    public static Dictionary<string, Tensor> StripPrefixes(Dictionary<string, Tensor> tensors)
    {
        bool changed = true;
        while (changed && tensors.Count > 0)
        {
            changed = false;
            foreach (var prefix in WrapperPrefixes)
                if (tensors.Keys.All(k => k.StartsWith(prefix, StringComparison.Ordinal)))
                {
                    tensors = tensors.ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
                    changed = true;
                }
        }
        return tensors;
    }
}
