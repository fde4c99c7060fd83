using Histo.Imaging;
using static TorchSharp.torch;

namespace Histo.SelfSupervised;

/// <summary>
/// DINO's multi-crop augmentation (main_dino.py's DataAugmentationDINO): 2 global crops (224 px, scale 0.4-1)
/// and N local crops (96 px, scale 0.05-0.4); each: horizontal flip p=0.5, colour jitter (brightness 0.4,
/// contrast 0.4, saturation 0.2, hue 0.1, in random order) with p=0.8, grayscale p=0.2; Gaussian blur with
/// sigma ~ U(0.1, 2) at p=1.0 (global 1), 0.1 (global 2), 0.5 (local); solarisation p=0.2 on global 2. For
/// histology, vertical flips and an optional H&amp;E stain jitter are added (tissue has no up). The blur's sigma
/// range is DINO's for 224 px global crops; for smaller images it shrinks in proportion (sigma 2 on a 32 px image
/// would wipe it out). Every random draw comes from one seeded generator.
/// </summary>
public sealed record DinoAugmentation
{
    public int GlobalSize { get; init; } = 224;
    public int LocalSize { get; init; } = 96;
    public int LocalCrops { get; init; } = 8;
    public (double Min, double Max) GlobalScale { get; init; } = (0.4, 1.0);
    public (double Min, double Max) LocalScale { get; init; } = (0.05, 0.4);
    public double ColourJitterProbability { get; init; } = 0.8;
    public double GrayscaleProbability { get; init; } = 0.2;
    public bool VerticalFlip { get; init; } = true;
    /// <summary>Gaussian blur sigma range in pixels of a 224 px global crop (DINO: 0.1-2), scaled by GlobalSize / 224.</summary>
    public (double Min, double Max) BlurSigma { get; init; } = (0.1, 2.0);
    /// <summary>H&amp;E stain jitter strength (0 turns it off).</summary>
    public double StainJitter { get; init; } = 0.05;

    /// <summary>The views of one image [3, H, W] in [0, 1]: global crops first, then local ones, each [3, S, S].</summary>
    public List<Tensor> Views(Tensor image, Random random)
    {
        var views = new List<Tensor>();
        var batch = image.unsqueeze(0);
        views.Add(View(batch, random, GlobalSize, GlobalScale, blurProbability: 1.0, solarizeProbability: 0));
        views.Add(View(batch, random, GlobalSize, GlobalScale, blurProbability: 0.1, solarizeProbability: 0.2));
        for (int i = 0; i < LocalCrops; i++) views.Add(View(batch, random, LocalSize, LocalScale, blurProbability: 0.5, solarizeProbability: 0));
        return views;
    }

    /// <summary>
    /// One global view of an image [3, H, W] in [0, 1], [3, GlobalSize, GlobalSize]: DINO's first (always blurred) or second
    /// (rarely blurred, sometimes solarised) global crop, e.g. a fixed view a distillation teacher sees once.
    /// </summary>
    public Tensor GlobalView(Tensor image, Random random, bool second)
    {
        using var batch = image.unsqueeze(0);
        return View(batch, random, GlobalSize, GlobalScale, blurProbability: second ? 0.1 : 1.0, solarizeProbability: second ? 0.2 : 0);
    }

    Tensor View(Tensor batch, Random random, int size, (double Min, double Max) scale, double blurProbability, double solarizeProbability)
    {
        using var scope = NewDisposeScope();
        var x = MultiCrop.RandomResizedCrop(batch, random, size, scale.Min, scale.Max);
        if (random.NextDouble() < 0.5) x = Augmentations.Flip(x, horizontal: true);
        if (VerticalFlip && random.NextDouble() < 0.5) x = Augmentations.Flip(x, horizontal: false);
        if (random.NextDouble() < ColourJitterProbability)
        {
            // torchvision's ColorJitter: factors drawn, then the four adjustments in a random order.
            double brightness = 0.6 + 0.8 * random.NextDouble(), contrast = 0.6 + 0.8 * random.NextDouble();
            double saturation = 0.8 + 0.4 * random.NextDouble(), hue = -0.1 + 0.2 * random.NextDouble();
            foreach (int op in Enumerable.Range(0, 4).OrderBy(_ => random.Next()))
                x = op switch
                {
                    0 => Augmentations.Brightness(x, brightness),
                    1 => Augmentations.Contrast(x, contrast),
                    2 => Augmentations.Saturation(x, saturation),
                    _ => Augmentations.Hue(x, hue),
                };
        }
        if (random.NextDouble() < GrayscaleProbability) x = Augmentations.Grayscale(x).expand(-1, 3, -1, -1);
        if (StainJitter > 0) x = MultiCrop.HeJitter(x, random, StainJitter);
        if (random.NextDouble() < blurProbability)
        {
            double sizeScale = GlobalSize / 224.0;
            double sigma = sizeScale * (BlurSigma.Min + (BlurSigma.Max - BlurSigma.Min) * random.NextDouble());
            x = Augmentations.GaussianBlur(x, sigma, Math.Max(1, (int)Math.Ceiling(2 * sigma)));
        }
        if (random.NextDouble() < solarizeProbability) x = Augmentations.Solarize(x);
        return x.squeeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>A grid image of <paramref name="rows"/> sets of views of one image, for a person to look at.</summary>
    public RgbaImage Grid(RgbaImage source, int seed, int rows = 3)
    {
        var random = new Random(seed);
        using var image = tensor(source.Pixels, [source.Height, source.Width, 4]).narrow(2, 0, 3).permute(2, 0, 1)
            .to_type(ScalarType.Float32).div(Models.KeptScalars.Of(255.0));
        int cell = GlobalSize, columns = 2 + LocalCrops, gap = 4;
        var grid = RgbaImage.Filled(columns * (cell + gap) + gap, rows * (cell + gap) + gap, 255, 255, 255);
        for (int r = 0; r < rows; r++)
        {
            var views = Views(image, random);
            for (int c = 0; c < views.Count; c++)
            {
                using var view = views[c];
                using var bytes = view.clamp(Models.KeptScalars.Zero, Models.KeptScalars.One).mul(Models.KeptScalars.ByteMax).round()
                    .to_type(ScalarType.Byte).permute(1, 2, 0).contiguous();
                var data = bytes.data<byte>().ToArray();
                int s = (int)view.shape[1];
                int x0 = gap + c * (cell + gap) + (cell - s) / 2, y0 = gap + r * (cell + gap) + (cell - s) / 2;
                for (int y = 0; y < s; y++)
                    for (int x = 0; x < s; x++)
                    {
                        int o = ((y0 + y) * grid.Width + x0 + x) * 4, i = (y * s + x) * 3;
                        grid.Pixels[o] = data[i]; grid.Pixels[o + 1] = data[i + 1]; grid.Pixels[o + 2] = data[i + 2];
                    }
            }
        }
        return grid;
    }
}
