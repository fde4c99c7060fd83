using Histo.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Histo.Mil;

/// <summary>
/// TransMIL (Shao et al., NeurIPS 2021; the authors' models/TransMIL.py): instances to 512-d (Linear + ReLU), the sequence
/// padded to a square by repeating its first instances, a class token in front, two Nystrom-attention TransLayers with the
/// PPEG position module between them, LayerNorm, the class token to the classifier. Not permutation-invariant: PPEG's
/// convolutions see the instances' order as a square image (the order Histo's feature files keep, row-major over the slide).
/// Instance scores are the class token's attention in the second layer, averaged over heads.
/// </summary>
public sealed class TransMil : MilModel
{
    /// <summary>The paper's width.</summary>
    public const int Dim = 512;

    readonly Sequential _fc1;
    readonly Parameter cls_token;
    readonly TransLayer layer1, layer2;
    readonly Ppeg pos_layer;
    readonly LayerNorm norm;
    readonly Linear _fc2;
    readonly int _inputDim;

    public TransMil(int inputDim, int classes) : base("transmil")
    {
        _inputDim = inputDim;
        _fc1 = Sequential(("0", Linear(inputDim, Dim)), ("1", ReLU()));
        cls_token = Parameter(randn(1, 1, Dim));
        layer1 = new TransLayer(Dim);
        layer2 = new TransLayer(Dim);
        pos_layer = new Ppeg(Dim);
        norm = LayerNorm(Dim);
        _fc2 = Linear(Dim, classes);
        RegisterComponents();
    }

    public override MilOutput Forward(Tensor bag, long? label = null)
    {
        CheckBag(bag, _inputDim);
        using var scope = NewDisposeScope();
        var h = _fc1.forward(bag.unsqueeze(0));                        // [1, n, 512]
        long n = h.shape[1], side = (long)Math.Ceiling(Math.Sqrt(n));
        h = cat([h, h[.., ..(int)(side * side - n)]], 1);               // padded to a square with its first instances
        h = cat([cls_token, h], 1);
        (h, _) = layer1.forward(h);
        h = pos_layer.forward(h, side);
        (h, var attention) = layer2.forward(h);
        var logits = _fc2.forward(norm.forward(h)[.., 0])[0];
        var scores = attention[0, 1..(int)(n + 1)];                    // the class token's attention to the real instances
        return new MilOutput(logits.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope(), null);
    }

    /// <summary>x + NystromAttention(LayerNorm(x)).</summary>
    sealed class TransLayer : Module
    {
        readonly LayerNorm norm;
        readonly NystromAttention attn;

        public TransLayer(int dim) : base("TransLayer")
        {
            norm = LayerNorm(dim);
            attn = new NystromAttention(dim, heads: 8, headDim: dim / 8, landmarks: dim / 2);
            RegisterComponents();
        }

        public (Tensor Output, Tensor ClassAttention) forward(Tensor x)
        {
            var (o, a) = attn.forward(norm.forward(x));
            return (x.add(o, KeptScalars.One), a);
        }
    }

    /// <summary>Pyramid position encoding generator: the patch tokens as a square image plus 7x7, 5x5 and 3x3 depthwise convs.</summary>
    sealed class Ppeg : Module
    {
        readonly Conv2d proj, proj1, proj2;

        public Ppeg(int dim) : base("PPEG")
        {
            proj = Conv2d(dim, dim, 7, padding: 3, groups: dim);
            proj1 = Conv2d(dim, dim, 5, padding: 2, groups: dim);
            proj2 = Conv2d(dim, dim, 3, padding: 1, groups: dim);
            RegisterComponents();
        }

        public Tensor forward(Tensor x, long side)
        {
            long b = x.shape[0], c = x.shape[2];
            var cls = x[.., ..1];
            var feat = x[.., 1..].transpose(1, 2).reshape(b, c, side, side);
            var sum = proj.forward(feat).add(feat, KeptScalars.One).add(proj1.forward(feat), KeptScalars.One)
                .add(proj2.forward(feat), KeptScalars.One);
            return cat([cls, sum.flatten(2).transpose(1, 2)], 1);
        }
    }
}

/// <summary>
/// Nystrom attention (Xiong et al., AAAI 2021) as the nystrom-attention package TransMIL uses computes it: the sequence
/// zero-padded at the front to a multiple of m landmarks, landmarks the means of groups of l = ceil(n / m) tokens, softmax
/// kernels A1 = q k_l^T, A2 = q_l k_l^T, A3 = q_l k^T (q scaled by d^-0.5), out = A1 pinv(A2) (A3 v) + a depthwise
/// convolution of v along the sequence (kernel 33), the pseudo-inverse by 6 iterations of z (13I - Az(15I - Az(7I - Az))) / 4.
/// Also returns the class token's (first real token's) attention row A1 pinv(A2) A3, averaged over heads.
/// </summary>
public sealed class NystromAttention : Module
{
    const int PseudoInverseIterations = 6, ResidualKernel = 33;

    readonly Linear to_qkv;
    readonly Sequential to_out;
    readonly Conv2d res_conv;
    readonly int _heads, _landmarks;
    readonly double _scale;

    public NystromAttention(int dim, int heads, int headDim, int landmarks, double dropout = 0.1) : base("NystromAttention")
    {
        _heads = heads;
        _landmarks = landmarks;
        _scale = Math.Pow(headDim, -0.5);
        to_qkv = Linear(dim, heads * headDim * 3, hasBias: false);
        to_out = Sequential(("0", Linear(heads * headDim, dim)), ("1", Dropout(dropout)));
        res_conv = Conv2d(heads, heads, (ResidualKernel, 1), padding: (ResidualKernel / 2, 0), groups: heads, bias: false);
        RegisterComponents();
    }

    public (Tensor Output, Tensor ClassAttention) forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1];
        int m = _landmarks, h = _heads;
        long pad = n % m == 0 ? 0 : m - n % m;
        if (pad > 0) x = nn.functional.pad(x, [0, 0, pad, 0]);
        long total = n + pad, groups = total / m;   // l = ceil(n / m) tokens per landmark
        var qkv = to_qkv.forward(x).chunk(3, -1);
        Tensor Heads(Tensor t) => t.reshape(b, total, h, -1).permute(0, 2, 1, 3);
        var q = Heads(qkv[0]).mul(KeptScalars.Of(_scale));
        var k = Heads(qkv[1]);
        var v = Heads(qkv[2]);
        long d = q.shape[3];
        var ql = q.reshape(b, h, m, groups, d).sum(3).div(KeptScalars.Of(groups));
        var kl = k.reshape(b, h, m, groups, d).sum(3).div(KeptScalars.Of(groups));
        var a1 = q.matmul(kl.transpose(-1, -2)).softmax(-1);
        var a2 = ql.matmul(kl.transpose(-1, -2)).softmax(-1);
        var a3 = ql.matmul(k.transpose(-1, -2)).softmax(-1);
        var a2Inverse = PseudoInverse(a2);
        var output = a1.matmul(a2Inverse).matmul(a3.matmul(v)).add(res_conv.forward(v), KeptScalars.One);
        output = to_out.forward(output.permute(0, 2, 1, 3).reshape(b, total, -1))[.., (int)pad..];
        var classAttention = a1[.., .., (int)pad..(int)(pad + 1)].matmul(a2Inverse).matmul(a3)[.., .., 0].mean([1])[.., (int)pad..];
        return (output.MoveToOuterDisposeScope(), classAttention.MoveToOuterDisposeScope());
    }

    /// <summary>The Moore-Penrose iteration of the nystrom-attention package; z0 = A^T / (max column sum x max row sum) over the
    /// whole tensor.</summary>
    static Tensor PseudoInverse(Tensor a)
    {
        var absolute = a.abs();
        var z = a.transpose(-1, -2).div(absolute.sum([-1]).max().mul(absolute.sum([-2]).max()));
        var eye = TorchSharp.torch.eye(a.shape[^1]).unsqueeze(0);
        for (int i = 0; i < PseudoInverseIterations; i++)
        {
            var az = a.matmul(z);
            var inner = eye.mul(KeptScalars.Of(7.0)).sub(az);
            inner = eye.mul(KeptScalars.Of(15.0)).sub(az.matmul(inner));
            z = z.matmul(eye.mul(KeptScalars.Of(13.0)).sub(az.matmul(inner))).mul(KeptScalars.Of(0.25));
        }
        return z;
    }
}
