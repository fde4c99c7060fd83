using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Models;

/// <summary>How strided convolutions and pooling pad. Torchvision pads symmetrically; CNTK (the ImageNet
/// ResNet-18 shipped with ML.NET) pads "same" with the odd pixel at the start.</summary>
public enum ResNetPadding { Torchvision, CntkSame }

/// <summary>A ResNet variant: block type, blocks per stage and stage widths (three stages: truncated after layer3).</summary>
public sealed record ResNetConfig(string Name, bool Bottleneck, int[] Layers, int[] Widths,
    ResNetPadding Padding = ResNetPadding.Torchvision)
{
    public int FeatureDim => Widths[^1] * (Bottleneck ? ResNet.BottleneckExpansion : 1);

    /// <summary>He et al. 2016's ResNet-18: four stages of two basic blocks.</summary>
    public static ResNetConfig ResNet18 => new("resnet18", false, [2, 2, 2, 2], [64, 128, 256, 512]);
    /// <summary>ResNet-50: bottleneck blocks 3-4-6-3, 2048-d features.</summary>
    public static ResNetConfig ResNet50 => new("resnet50", true, [3, 4, 6, 3], [64, 128, 256, 512]);
    /// <summary>CLAM's resnet50_trunc (Lu et al. 2021, models/resnet_custom.py): ResNet-50 through layer3, 1024-d.</summary>
    /// <summary>ResNet-18 at half width (32-64-128-256 channels, 256-d): a quarter of the multiply-adds, a distillation student.</summary>
    public static ResNetConfig ResNet18Half => new("resnet18-half", false, [2, 2, 2, 2], [32, 64, 128, 256]);
    /// <summary>ResNet-10: one basic block per stage (the depth of RepDistiller's small students), 512-d.</summary>
    public static ResNetConfig ResNet10 => new("resnet10", false, [1, 1, 1, 1], [64, 128, 256, 512]);
    public static ResNetConfig ResNet50Trunc => new("resnet50-trunc", true, [3, 4, 6], [64, 128, 256]);
}

/// <summary>
/// ResNet (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016), laid out as
/// torchvision's so that its state-dict names (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0, ...)
/// load torchvision and timm checkpoints. The classifier is removed: forward returns the globally
/// average-pooled feature [B, C].
/// </summary>
public sealed class ResNet : Module<Tensor, Tensor>
{
    public const int BottleneckExpansion = 4;

    readonly Conv2d conv1;
    readonly BatchNorm2d bn1;
    readonly Sequential layer1, layer2, layer3;
    readonly Sequential? layer4;
    readonly ResNetPadding _padding;
    FusedConvBn? _stem;

    public ResNetConfig Config { get; }
    public int FeatureDim => Config.FeatureDim;

    public ResNet(ResNetConfig config) : base(config.Name)
    {
        Config = config;
        _padding = config.Padding;
        int stemPad = config.Padding == ResNetPadding.Torchvision ? 3 : 0;
        conv1 = Conv2d(3, config.Widths[0], 7, stride: 2, padding: stemPad, bias: false);
        bn1 = BatchNorm2d(config.Widths[0]);
        int inChannels = config.Widths[0];
        var stages = new Sequential?[4];
        for (int s = 0; s < config.Layers.Length; s++)
        {
            var blocks = new List<(string, Module<Tensor, Tensor>)>();
            for (int b = 0; b < config.Layers[s]; b++)
            {
                int stride = s > 0 && b == 0 ? 2 : 1;
                Module<Tensor, Tensor> block = config.Bottleneck
                    ? new BottleneckBlock(inChannels, config.Widths[s], stride, config.Padding)
                    : new BasicBlock(inChannels, config.Widths[s], stride, config.Padding);
                blocks.Add((b.ToString(), block));
                inChannels = config.Widths[s] * (config.Bottleneck ? BottleneckExpansion : 1);
            }
            stages[s] = Sequential(blocks);
        }
        (layer1, layer2, layer3, layer4) = (stages[0]!, stages[1]!, stages[2]!, stages[3]);
        RegisterComponents();
        foreach (var (_, m) in named_modules())
            if (m is Conv2d c) init.kaiming_normal_(c.weight, mode: init.FanInOut.FanOut, nonlinearity: init.NonlinearityType.ReLU);
    }

    public override Tensor forward(Tensor x) => Forward(x, stages: null);

    /// <summary>
    /// The pooled feature [B, C] and each stage's output (layer1 [B, C1, H/4, W/4] ... the last stage), the activations
    /// attention transfer compares (Zagoruyko and Komodakis 2017 take them at the end of each group of blocks).
    /// </summary>
    public (Tensor Pooled, List<Tensor> Stages) ForwardStages(Tensor x)
    {
        var stages = new List<Tensor>();
        return (Forward(x, stages), stages);
    }

    Tensor Forward(Tensor x, List<Tensor>? stages)
    {
        using var scope = NewDisposeScope();
        x = functional.relu(FusedConvBn.Apply(conv1, bn1, _stem, CntkPad(x, 7, 2)));   // [B, 64, H/2, W/2]
        x = _padding == ResNetPadding.Torchvision
            ? functional.max_pool2d(x, 3, 2, 1)
            : functional.max_pool2d(functional.pad(x, [1, 0, 1, 0], value: double.NegativeInfinity), 3, 2); // [B, 64, H/4, W/4]
        foreach (var layer in new[] { layer1, layer2, layer3, layer4 })    // [B, C, H/4 ... H/32, W/4 ... W/32]
        {
            if (layer is null) continue;
            x = layer.forward(x);
            stages?.Add(x.MoveToOuterDisposeScope());
        }
        return x.mean([2, 3]).MoveToOuterDisposeScope();                    // global average pool: [B, C]
    }

    /// <summary>
    /// Folds every batch norm into the convolution before it, for inference (w' = w gamma / sqrt(var + eps), b' = beta - mean
    /// gamma / sqrt(var + eps)): one pass over the activations fewer per layer. Used while the module is in eval mode; the
    /// caller must not change the weights afterwards (<see cref="PatchEncoder"/> fuses the network it owns).
    /// </summary>
    public void FuseBatchNorm()
    {
        _stem = FusedConvBn.Of(conv1, bn1, Config.Padding == ResNetPadding.Torchvision ? 3 : 0, stride: 2);
        foreach (var (_, m) in named_modules())
            switch (m)
            {
                case BasicBlock basic: basic.FuseBatchNorm(); break;
                case BottleneckBlock bottleneck: bottleneck.FuseBatchNorm(); break;
            }
    }

    /// <summary>CNTK's "same" padding for a k x k, stride-s window: k - s pixels, the odd one at the start.</summary>
    internal Tensor CntkPad(Tensor x, int kernel, int stride) => CntkPad(x, kernel, stride, _padding);

    internal static Tensor CntkPad(Tensor x, int kernel, int stride, ResNetPadding padding)
    {
        if (padding != ResNetPadding.CntkSame) return x;
        int total = Math.Max(kernel - stride, 0), begin = (total + 1) / 2, end = total / 2;
        return total == 0 ? x : functional.pad(x, [begin, end, begin, end]);
    }
}

/// <summary>Two 3x3 convolutions with a residual connection (ResNet-18/34).</summary>
sealed class BasicBlock : Module<Tensor, Tensor>
{
    readonly Conv2d conv1, conv2;
    readonly BatchNorm2d bn1, bn2;
    readonly Sequential? downsample;
    readonly int _stride;
    readonly ResNetPadding _padding;
    FusedConvBn? _fused1, _fused2, _fusedDown;

    public BasicBlock(int inChannels, int channels, int stride, ResNetPadding padding) : base(nameof(BasicBlock))
    {
        _stride = stride;
        _padding = padding;
        bool cntkStrided = padding == ResNetPadding.CntkSame && stride > 1;
        conv1 = Conv2d(inChannels, channels, 3, stride: stride, padding: cntkStrided ? 0 : 1, bias: false);
        bn1 = BatchNorm2d(channels);
        conv2 = Conv2d(channels, channels, 3, stride: 1, padding: 1, bias: false);
        bn2 = BatchNorm2d(channels);
        if (stride != 1 || inChannels != channels)
            downsample = Sequential(("0", Conv2d(inChannels, channels, 1, stride: stride, bias: false)), ("1", BatchNorm2d(channels)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var input = _stride > 1 ? ResNet.CntkPad(x, 3, _stride, _padding) : x;
        var y = functional.relu(FusedConvBn.Apply(conv1, bn1, _fused1, input));
        y = FusedConvBn.Apply(conv2, bn2, _fused2, y);
        var identity = downsample is null ? x : _fusedDown is not null && !training ? _fusedDown.Forward(x) : downsample.forward(x);
        return functional.relu(y.add(identity, KeptScalars.One)).MoveToOuterDisposeScope(); // y + identity
    }

    internal void FuseBatchNorm()
    {
        bool cntkStrided = _padding == ResNetPadding.CntkSame && _stride > 1;
        _fused1 = FusedConvBn.Of(conv1, bn1, cntkStrided ? 0 : 1, _stride);
        _fused2 = FusedConvBn.Of(conv2, bn2, 1);
        if (downsample is not null) _fusedDown = FusedConvBn.Of((Conv2d)downsample[0], (BatchNorm2d)downsample[1], 0, _stride);
    }
}

/// <summary>1x1 reduce, 3x3 (strided, as torchvision's ResNet v1.5), 1x1 expand by 4, with a residual connection (ResNet-50).</summary>
sealed class BottleneckBlock : Module<Tensor, Tensor>
{
    readonly Conv2d conv1, conv2, conv3;
    readonly BatchNorm2d bn1, bn2, bn3;
    readonly Sequential? downsample;
    readonly int _stride;
    readonly ResNetPadding _padding;
    FusedConvBn? _fused1, _fused2, _fused3, _fusedDown;

    public BottleneckBlock(int inChannels, int channels, int stride, ResNetPadding padding) : base(nameof(BottleneckBlock))
    {
        _stride = stride;
        _padding = padding;
        int outChannels = channels * ResNet.BottleneckExpansion;
        bool cntkStrided = padding == ResNetPadding.CntkSame && stride > 1;
        conv1 = Conv2d(inChannels, channels, 1, bias: false);
        bn1 = BatchNorm2d(channels);
        conv2 = Conv2d(channels, channels, 3, stride: stride, padding: cntkStrided ? 0 : 1, bias: false);
        bn2 = BatchNorm2d(channels);
        conv3 = Conv2d(channels, outChannels, 1, bias: false);
        bn3 = BatchNorm2d(outChannels);
        if (stride != 1 || inChannels != outChannels)
            downsample = Sequential(("0", Conv2d(inChannels, outChannels, 1, stride: stride, bias: false)), ("1",
                BatchNorm2d(outChannels)));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = functional.relu(FusedConvBn.Apply(conv1, bn1, _fused1, x));
        var padded = _stride > 1 ? ResNet.CntkPad(y, 3, _stride, _padding) : y;
        y = functional.relu(FusedConvBn.Apply(conv2, bn2, _fused2, padded));
        y = FusedConvBn.Apply(conv3, bn3, _fused3, y);
        var identity = downsample is null ? x : _fusedDown is not null && !training ? _fusedDown.Forward(x) : downsample.forward(x);
        return functional.relu(y.add(identity, KeptScalars.One)).MoveToOuterDisposeScope(); // y + identity
    }

    internal void FuseBatchNorm()
    {
        bool cntkStrided = _padding == ResNetPadding.CntkSame && _stride > 1;
        _fused1 = FusedConvBn.Of(conv1, bn1, 0);
        _fused2 = FusedConvBn.Of(conv2, bn2, cntkStrided ? 0 : 1, _stride);
        _fused3 = FusedConvBn.Of(conv3, bn3, 0);
        if (downsample is not null) _fusedDown = FusedConvBn.Of((Conv2d)downsample[0], (BatchNorm2d)downsample[1], 0, _stride);
    }
}

/// <summary>A convolution with the batch norm after it folded in (inference only): conv2d(x, w', b').</summary>
sealed class FusedConvBn(Tensor weight, Tensor bias, long stride, long padding)
{
    /// <summary>PyTorch's BatchNorm2d eps, which every batch norm here is built with.</summary>
    const double BatchNormEps = 1e-5;

    public static FusedConvBn Of(Conv2d conv, BatchNorm2d bn, long padding, long stride = 1)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var scale = bn.weight! / bn.running_var!.add(KeptScalars.Of(BatchNormEps), KeptScalars.One).sqrt();
        var weight = conv.weight * scale.reshape(-1, 1, 1, 1);
        var bias = bn.bias! - bn.running_mean! * scale;
        return new FusedConvBn(weight.DetachFromDisposeScope(), bias.DetachFromDisposeScope(), stride, padding);
    }

    public Tensor Forward(Tensor x) => functional.conv2d(x, weight, bias, strides: [stride, stride], padding: [padding, padding]);

    /// <summary>bn(conv(x)), from the folded weights when they exist and the module is in eval mode.</summary>
    public static Tensor Apply(Conv2d conv, BatchNorm2d bn, FusedConvBn? fused, Tensor x) =>
        fused is not null && !conv.training ? fused.Forward(x) : bn.forward(conv.forward(x));
}
