using static Histo.Models.KeptScalars;
using static TorchSharp.torch;

namespace Histo.Imaging;

/// <summary>
/// RandomResizedCrop (torchvision's sampling: area fraction in [scale], log-uniform aspect ratio in
/// [3/4, 4/3], up to 10 tries, then a centre crop) and H&amp;E stain jitter, driven by an explicit seeded
/// generator so the same seed gives the same views.
/// </summary>
public static class MultiCrop
{
    /// <summary>Crop box (top, left, height, width) as torchvision's RandomResizedCrop.get_params samples it.</summary>
    public static (int Top, int Left, int Height, int Width) SampleCrop(Random random, int height, int width, double scaleMin, double scaleMax,
        double ratioMin = 3.0 / 4, double ratioMax = 4.0 / 3)
    {
        double area = height * width;
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (scaleMin + random.NextDouble() * (scaleMax - scaleMin));
            double ratio = Math.Exp(Math.Log(ratioMin) + random.NextDouble() * (Math.Log(ratioMax) - Math.Log(ratioMin)));
            int w = (int)Math.Round(Math.Sqrt(target * ratio)), h = (int)Math.Round(Math.Sqrt(target / ratio));
            if (w > 0 && h > 0 && w <= width && h <= height)
                return (random.Next(0, height - h + 1), random.Next(0, width - w + 1), h, w);
        }
        // Fallback: the largest centre crop within the ratio range.
        double inRatio = (double)width / height;
        int cw, ch;
        if (inRatio < ratioMin) { cw = width; ch = (int)Math.Round(cw / ratioMin); }
        else if (inRatio > ratioMax) { ch = height; cw = (int)Math.Round(ch * ratioMax); }
        else { cw = width; ch = height; }
        return ((height - ch) / 2, (width - cw) / 2, ch, cw);
    }

    /// <summary>Crops [B, 3, H, W] images (one box per image) and resizes each to size x size, bicubic as DINO.</summary>
    public static Tensor RandomResizedCrop(Tensor images, Random random, int size, double scaleMin, double scaleMax)
    {
        using var scope = NewDisposeScope();
        int h = (int)images.shape[2], w = (int)images.shape[3];
        var crops = new List<Tensor>();
        for (int b = 0; b < images.shape[0]; b++)
        {
            var (top, left, ch, cw) = SampleCrop(random, h, w, scaleMin, scaleMax);
            var crop = images[b].narrow(1, top, ch).narrow(2, left, cw).unsqueeze(0);
            crops.Add(nn.functional.interpolate(crop, [size, size], mode: InterpolationMode.Bicubic, align_corners: false)
                .clamp(Zero, One));
        }
        return cat(crops, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Ruifrok and Johnston's H&amp;E(-DAB) optical-density stain matrix (rows: haematoxylin, eosin, residual).</summary>
    static readonly float[,] HeStains =
    {
        { 0.650f, 0.704f, 0.286f },
        { 0.072f, 0.990f, 0.105f },
        { 0.268f, 0.570f, 0.776f },
    };

    /// <summary>
    /// Stain-aware jitter (Tellez et al., Med Image Anal 2019): colour deconvolution to haematoxylin and eosin
    /// concentrations, c' = alpha c + beta per stain (alpha ~ U(1 - sigma, 1 + sigma), beta ~ U(-sigma, sigma)), then
    /// back to RGB. Images [B, 3, H, W] in [0, 1].
    /// </summary>
    public static Tensor HeJitter(Tensor images, Random random, double sigma = 0.05)
    {
        using var scope = NewDisposeScope();
        var stains = tensor(HeStains);
        stains = stains / stains.norm(1, keepdim: true);                     // unit rows
        var inverse = linalg.inv(stains);                                      // OD = C S  ->  C = OD S^-1
        var od = -(images.clamp_min(Of(1.0 / 255))).log();                         // [B, 3, H, W]
        var outputs = new List<Tensor>();
        for (int b = 0; b < images.shape[0]; b++)
        {
            var pixels = od[b].flatten(1).T;                                   // [HW, 3]
            var c = pixels.matmul(inverse);                                    // [HW, 3] concentrations
            var alpha = tensor(new float[] { (float)(1 + (2 * random.NextDouble() - 1) * sigma), (float)(1 + (2 * random.NextDouble() - 1) * sigma), 1f });
            var beta = tensor(new float[] { (float)((2 * random.NextDouble() - 1) * sigma), (float)((2 * random.NextDouble() - 1) * sigma), 0f });
            var jittered = (c * alpha).add(beta, One).matmul(stains);                // back to optical density
            outputs.Add((-jittered).exp().T.reshape(3, images.shape[2], images.shape[3]).clamp(Zero, One));
        }
        return stack(outputs).MoveToOuterDisposeScope();
    }
}
