using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Histo.Models;

namespace Histo.SelfSupervised;

/// <summary>
/// DINO's projection head (main_dino.py / vision_transformer.py DINOHead): a 3-layer MLP in -> 2048 -> 2048 ->
/// 256 with GELU, trunc-normal(0.02) weights and zero biases; L2 normalisation; then a weight-normalised
/// linear layer without bias to K outputs, w = g v / |v| per output, with g fixed at 1 when
/// <c>normLastLayer</c> (the paper's default), which stabilises training.
/// </summary>
public sealed class DinoHead : Module<Tensor, Tensor>
{
    public const int HiddenDim = 2048;
    public const int BottleneckDim = 256;

    readonly Sequential mlp;
    readonly Parameter last_layer_weight_v;
    readonly Parameter last_layer_weight_g;

    public DinoHead(int inDim, int outDim, bool normLastLayer = true, int hidden = HiddenDim, int bottleneck = BottleneckDim) : base(nameof(DinoHead))
    {
        mlp = Sequential(("0", Linear(inDim, hidden)), ("1", GELU()), ("2", Linear(hidden, hidden)), ("3", GELU()), ("4", Linear(hidden, bottleneck)));
        last_layer_weight_v = Parameter(empty(outDim, bottleneck));
        last_layer_weight_g = Parameter(ones(outDim, 1), requires_grad: !normLastLayer);
        RegisterComponents();
        using (no_grad())
        {
            foreach (var (_, m) in mlp.named_modules())
                if (m is Linear l) { TruncatedNormal.Fill(l.weight, 0.02); if (l.bias is not null) init.zeros_(l.bias); }
            TruncatedNormal.Fill(last_layer_weight_v, 0.02);
        }
    }

    /// <summary>The last layer's parameters (frozen during DINO's first epoch).</summary>
    public IEnumerable<Parameter> LastLayer => [last_layer_weight_v, last_layer_weight_g];

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var z = functional.normalize(mlp.forward(x), p: 2, dim: -1);                          // [B, 256], unit length
        var w = last_layer_weight_g * functional.normalize(last_layer_weight_v, p: 2, dim: 1); // weight norm: g v / |v|
        return z.matmul(w.T).MoveToOuterDisposeScope();                                       // [B, K]
    }
}

/// <summary>A backbone (classifier removed, forward = features) with a DINO head.</summary>
public sealed class DinoNetwork : Module<Tensor, Tensor>
{
    readonly Module<Tensor, Tensor> backbone;
    readonly DinoHead head;

    public DinoNetwork(Module<Tensor, Tensor> backbone, DinoHead head) : base(nameof(DinoNetwork))
    {
        this.backbone = backbone;
        this.head = head;
        RegisterComponents();
    }

    public Module<Tensor, Tensor> Backbone => backbone;
    public DinoHead Head => head;

    /// <summary>DINO's multi-crop forward: the backbone runs once per resolution group, the head once on all.</summary>
    public Tensor Forward(IReadOnlyList<Tensor> crops)
    {
        using var scope = NewDisposeScope();
        var features = new List<Tensor>();
        int start = 0;
        while (start < crops.Count)
        {
            int end = start;
            while (end < crops.Count && crops[end].shape[^1] == crops[start].shape[^1]) end++;
            features.Add(backbone.forward(cat(crops.Skip(start).Take(end - start).ToList(), 0)));
            start = end;
        }
        return head.forward(cat(features, 0)).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor x) => head.forward(backbone.forward(x));
}
