using Histo.Models;
using static TorchSharp.torch;

namespace Histo.VisionLanguage;

/// <summary>
/// What zero-shot needs of a vision-language model: image and text embeddings in one space, their inverse temperature,
/// and how images and text go in. A CLIP checkpoint (<see cref="ClipModel"/>) and a <c>histo clip-train</c> run
/// (<see cref="ContrastiveModel"/>) both are one.
/// </summary>
public interface IVisionLanguageModel : IDisposable
{
    int ImageSize { get; }
    InputNormalization Normalization { get; }
    int Context { get; }
    int Vocabulary { get; }
    int EmbedDim { get; }
    /// <summary>The tokenizer the model was trained with (clip, or a merges file/folder); null: CLIP's.</summary>
    string? Tokenizer { get; }
    /// <summary>exp(logit_scale).</summary>
    double LogitScale { get; }
    /// <summary>Image embeddings (not normalised) of preprocessed images [B, 3, S, S].</summary>
    Tensor EncodeImage(Tensor images);
    /// <summary>Text embeddings (not normalised) of token rows [B, Context] padded with 0.</summary>
    Tensor EncodeText(Tensor tokens);
    void SetEvaluation();
}

public static class VisionLanguageModels
{
    /// <summary>A <c>histo clip-train</c> run folder, or a CLIP checkpoint file in OpenAI's or Hugging Face's layout.</summary>
    /// <param name="gelu">The checkpoint's MLPs use nn.GELU (open_clip models such as QuiltNet), not OpenAI's QuickGELU.</param>
    public static IVisionLanguageModel Load(string path, bool gelu = false)
    {
        if (Directory.Exists(path)) return ContrastiveModel.LoadRun(path);
        if (!File.Exists(path)) throw new HistoException($"{path}: no such checkpoint file or clip-train run folder (--weights/--model)");
        return ClipModel.Load(path, quickGelu: !gelu);
    }
}
