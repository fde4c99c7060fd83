using static TorchSharp.torch;

namespace Histo.Models;

/// <summary>
/// Pathology foundation models as registry rows: each is a <see cref="ViTConfig"/> (timm's configuration surface) with the
/// input its card prescribes and where its gated weights come from. Sizes and switches are those of the models' timm
/// configurations and cards (TRIDENT's patch-encoder zoo builds them the same way).
/// </summary>
public static class FoundationModels
{
    /// <summary>timm's init_values for these models' LayerScale (the weights file overrides it).</summary>
    const double LayerScaleInit = 1e-5;

    /// <summary>UNI (Chen et al., Nature Medicine 2024): ViT-L/16 with LayerScale, class token, 1,024-d.</summary>
    public static ViTConfig Uni => new("uni", 1024, 24, 16, PatchSize: 16, ImageSize: 224, MlpRatio: 4)
    { LayerScaleInit = LayerScaleInit, AntialiasPositions = true };

    /// <summary>UNI2-h: ViT-H/14, 1,536 wide, 24 deep, 24 heads, SwiGLUPacked (hidden 8,192), 8 registers, no_embed_class.</summary>
    public static ViTConfig Uni2H => new("uni2-h", 1536, 24, 24, PatchSize: 14, ImageSize: 224, MlpRatio: 2.66667 * 2)
    {
        Mlp = ViTMlp.SwiGluPacked, LayerScaleInit = LayerScaleInit, RegisterTokens = 8, NoEmbedClass = true, AntialiasPositions = true,
    };

    /// <summary>Virchow (Vorontsov et al., Nature Medicine 2024): ViT-H/14, 1,280 wide, 32 deep, 16 heads, SwiGLUPacked (mlp
    /// ratio 5.3375); the embedding is the class token and the patch-token mean, 2,560-d.</summary>
    public static ViTConfig Virchow => new("virchow", 1280, 32, 16, PatchSize: 14, ImageSize: 224, MlpRatio: 5.3375)
    {
        Mlp = ViTMlp.SwiGluPacked, LayerScaleInit = LayerScaleInit, Pooling = ViTPooling.ClsAndPatchMean, AntialiasPositions = true,
    };

    /// <summary>Virchow2 (Zimmermann et al. 2024): Virchow with 4 register tokens (left out of the patch mean).</summary>
    public static ViTConfig Virchow2 => Virchow with { Name = "virchow2", RegisterTokens = 4 };

    /// <summary>H-optimus-0 and -1 (Bioptimus): timm's vit_giant_patch14_reg4_dinov2, 1,536 wide, 40 deep, 24 heads, SwiGLUPacked
    /// (hidden 8,192), 4 registers, no_embed_class; class token, 1,536-d.</summary>
    public static ViTConfig HOptimus0 => new("h-optimus-0", 1536, 40, 24, PatchSize: 14, ImageSize: 224, MlpRatio: 2.66667 * 2)
    {
        Mlp = ViTMlp.SwiGluPacked, LayerScaleInit = LayerScaleInit, RegisterTokens = 4, NoEmbedClass = true, AntialiasPositions = true,
    };

    /// <summary>Prov-GigaPath's tile encoder (Xu et al., Nature 2024): timm's vit_giant_patch14_dinov2 with 16 px patches, 1,536
    /// wide, 40 deep, 24 heads, SwiGLUPacked (mlp ratio 5.33334), no registers; class token, 1,536-d.</summary>
    public static ViTConfig GigaPath => new("gigapath", 1536, 40, 24, PatchSize: 16, ImageSize: 224, MlpRatio: 5.33334)
    { Mlp = ViTMlp.SwiGluPacked, LayerScaleInit = LayerScaleInit, AntialiasPositions = true };

    /// <summary>Phikon (Filiot et al. 2023, Owkin): Hugging Face ViTModel ViT-B/16 trained with iBOT on 40M TCGA patches;
    /// LayerNorm eps 1e-12 (transformers' ViT default); class token, 768-d. Positions resampled as current transformers does
    /// (bicubic to the grid's size, no antialiasing).</summary>
    public static ViTConfig Phikon => new("phikon", 768, 12, 12, PatchSize: 16, ImageSize: 224, MlpRatio: 4) { LayerNormEps = 1e-12 };

    /// <summary>Phikon-v2 (Filiot et al. 2024): Hugging Face Dinov2Model ViT-L/16 with LayerScale, DINOv2 on 460M patches;
    /// class token, 1,024-d.</summary>
    public static ViTConfig PhikonV2 => new("phikon-v2", 1024, 24, 16, PatchSize: 16, ImageSize: 224, MlpRatio: 4)
    { LayerScaleInit = LayerScaleInit };

    /// <summary>H0-mini (Bioptimus, distilled from H-optimus-0): timm's vit_base_patch14_reg4_dinov2 with SwiGLUPacked (fc1 4,096),
    /// LayerScale, 4 registers, no_embed_class; class token, 768-d (TRIDENT's default; the card also shows class + patch mean).</summary>
    public static ViTConfig H0Mini => new("h0-mini", 768, 12, 12, PatchSize: 14, ImageSize: 224, MlpRatio: 5.33334)
    {
        Mlp = ViTMlp.SwiGluPacked, LayerScaleInit = LayerScaleInit, RegisterTokens = 4, NoEmbedClass = true, AntialiasPositions = true,
    };

    /// <summary>H-optimus' channel statistics (its model card).</summary>
    public static InputNormalization.MeanStd HOptimusNormalization => new([0.707223f, 0.578729f, 0.703617f],
        [0.211883f, 0.230117f, 0.177517f]);

    // The cards' transforms, as TRIDENT's load.py applies them (torchvision on PIL images).
    static readonly CardTransform Resize224 = new(224, 224), Bicubic224 = new(224, 224, InterpolationMode.Bicubic),
        GigaPathTransform = new(256, 224, InterpolationMode.Bicubic);

    // Default precision: half where TRIDENT runs the model in half precision (bf16 here, on CPUs that have it), fp32 where it
    // runs fp32 (CTransPath, Phikon, ResNet-50).
    const ScalarType Half = ScalarType.BFloat16, Full = ScalarType.Float32;

    public static IReadOnlyList<EncoderSpec> All { get; } =
    [
        Row(Uni, "UNI (Mahmood Lab), ViT-L/16 pretrained with DINOv2 on 100M pathology patches", "https://huggingface.co/MahmoodLab/UNI",
            "gated; CC-BY-NC-ND 4.0, non-commercial academic research", Resize224, Half),
        Row(Uni2H, "UNI2-h (Mahmood Lab), ViT-H/14 with registers, pretrained on 200M+ pathology patches",
            "https://huggingface.co/MahmoodLab/UNI2-h", "gated; CC-BY-NC-ND 4.0, non-commercial academic research", Resize224, Half),
        Row(Virchow, "Virchow (Paige), ViT-H/14 pretrained with DINOv2 on 1.5M slides; class token + patch mean",
            "https://huggingface.co/paige-ai/Virchow", "gated; see the model card's terms", Bicubic224, Half),
        Row(Virchow2, "Virchow2 (Paige), Virchow with 4 registers, mixed magnifications; class token + patch mean",
            "https://huggingface.co/paige-ai/Virchow2", "gated; CC-BY-NC-ND 4.0, non-commercial", Bicubic224, Half),
        Row(HOptimus0, "H-optimus-0 (Bioptimus), ViT-g/14 with registers, pretrained on 500k+ slides",
            "https://huggingface.co/bioptimus/H-optimus-0", "gated; Apache-2.0", Resize224, Half, HOptimusNormalization),
        Row(HOptimus0 with { Name = "h-optimus-1" }, "H-optimus-1 (Bioptimus), H-optimus-0's architecture, 1M+ slides",
            "https://huggingface.co/bioptimus/H-optimus-1", "gated; non-commercial, see the model card", Resize224, Half,
            HOptimusNormalization),
        Row(GigaPath, "Prov-GigaPath tile encoder (Providence, Microsoft), ViT-g/16 pretrained on 1.3B tiles",
            "https://huggingface.co/prov-gigapath/prov-gigapath", "gated; Apache-2.0 with the card's research-use terms",
            GigaPathTransform, Half),
        Row(Phikon, "Phikon (Owkin), ViT-B/16 pretrained with iBOT on 40M TCGA patches (Hugging Face ViTModel weights)",
            "https://huggingface.co/owkin/phikon", "not gated; Owkin non-commercial licence, see the model card", Resize224, Full),
        Row(PhikonV2, "Phikon-v2 (Owkin), ViT-L/16 pretrained with DINOv2 on 460M patches (Hugging Face Dinov2Model weights)",
            "https://huggingface.co/owkin/phikon-v2", "not gated; Owkin non-commercial licence, see the model card", Resize224, Full),
        Row(H0Mini, "H0-mini (Bioptimus), ViT-B/14 with registers distilled from H-optimus-0",
            "https://huggingface.co/bioptimus/H0-mini", "gated; non-commercial, see the model card", Bicubic224, Half,
            HOptimusNormalization),
        new("ctranspath", "CTransPath (Wang et al. 2022), Swin-T behind a convolutional stem, self-supervised on 15M patches",
            224, SwinConfig.CTransPath.FeatureDim, InputNormalization.ImageNet, () => new SwinTransformer(SwinConfig.CTransPath),
            "required")
        {
            ModelCard = "https://github.com/Xiyue-Wang/TransPath",
            Terms = "not gated: ctranspath.pth is linked from the README; TRIDENT's CHIEF_CTransPath.pth also loads",
            ConvertWeights = SwinTransformer.WithoutAttentionMasks, Transform = Resize224,
        },
        // CLAM's default encoder: torchvision's ImageNet ResNet-50 weights, loaded into the truncated network (layer4 and fc of
        // the file are not used, as CLAM's load_state_dict(strict=False) leaves them).
        new("resnet50-trunc", "CLAM's resnet50_trunc: torchvision ResNet-50 through layer3, average pooled (CLAM's default)", 224, 1024,
            InputNormalization.ImageNet, () => new ResNet(ResNetConfig.ResNet50Trunc), "required")
        {
            ModelCard = "https://download.pytorch.org/models/resnet50-19c8e357.pth", Terms = "BSD-3-Clause (torchvision)",
            UnusedWeights = ["layer4."], Transform = Resize224,
        },
    ];

    static EncoderSpec Row(ViTConfig config, string description, string card, string terms, CardTransform transform,
        ScalarType precision, InputNormalization? normalization = null) =>
        new(config.Name, description, config.ImageSize, config.FeatureDim, normalization ?? InputNormalization.ImageNet,
            () => new VisionTransformer(config), "required")
        {
            ModelCard = card, Terms = terms, Transform = transform, DefaultPrecision = precision, Parameters = config.ParameterCount,
            ConvertWeights = tensors => ViTLayouts.ToTimm(tensors, config),
        };
}
