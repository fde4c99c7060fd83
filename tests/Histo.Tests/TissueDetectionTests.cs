using Histo.Imaging;
using Histo.Slides;

namespace Histo.Tests;

public class TissueDetectionTests
{
    static TissueMask DetectOn(string path)
    {
        var image = RgbaImage.Load(path);
        return TissueDetector.Detect(image, image.Width, image.Height);
    }

    [Theory]
    [Trait("Category", "SharedData")]
    [InlineData("tissue-level0-4302-10273-4814-10785.png", true)]
    [InlineData("tissue-level0-7352-11762-7864-12274.png", true)]
    [InlineData("tissue-level2-1784-6289-5880-10386.png", true)]
    [InlineData("tissue-level2-3000-7666-7096-11763.png", true)]
    [InlineData("tissue-level2-4640-4649-8736-8746.png", true)]
    [InlineData("tissue-level2-4760-5241-8856-9338.png", true)]
    [InlineData("no-tissue.png", false)]
    [InlineData("no-tissue2.png", false)]
    [InlineData("no-tissue-line.png", false)]
    [InlineData("no-tissue-red-pen.png", false)]
    [InlineData("no-tissue-green-pen.png", false)]
    [InlineData("almost-white-1.png", false)]
    public void SharedData_TissueTilesAreClassified(string file, bool hasTissue)
    {
        var mask = DetectOn(SharedData.Path_("tissue-tiles", file));
        // A tile "has tissue" when a quarter of it is tissue. Measured: tissue tiles 0.49-0.9 (fatty tissue
        // lowest), no-tissue tiles 0 except the blurred red-pen tile (0.19: dark, blurred ink that is neither
        // red-marker coloured nor smooth enough to follow within 32 pixels of the stroke).
        Assert.Equal(hasTissue, mask.TissueFraction >= 0.25);
    }

    [Theory]
    [Trait("Category", "SharedData")]
    [InlineData("tcga-red-pen.png")]
    [InlineData("tcga-green-pen.png")]
    [InlineData("wsi-blue-pen.png")]
    [InlineData("tcga-lung-rgb.png")]
    [InlineData("diagnostic-slide-thumb-rgb.png")]
    public void SharedData_ThumbnailsKeepTissueAndDropInk(string file)
    {
        var image = RgbaImage.Load(SharedData.Path_("thumbnails", file));
        var mask = TissueDetector.Detect(image, image.Width, image.Height);
        int ink = 0, inkKept = 0, stained = 0, stainedKept = 0;
        for (int i = 0; i < mask.Mask.Length; i++)
        {
            int r = image.Pixels[4 * i], g = image.Pixels[4 * i + 1], b = image.Pixels[4 * i + 2];
            int s = Saturation(r, g, b);
            double hue = TissueDetector.Hue(r, g, b);
            bool kept = mask.Mask[i] != 0;
            bool vividInk = UnmistakableInk(r, g, b);
            // Unmistakable stained tissue: purple-to-pink hue with moderate saturation.
            bool clearTissue = s is > 50 and < 140 && hue is >= 270 and < 340;
            if (vividInk) { ink++; if (kept) inkKept++; }
            if (clearTissue) { stained++; if (kept) stainedKept++; }
        }
        Assert.True(stained > 1000, $"{file}: too few stained pixels to judge ({stained})");
        // Tissue right under a pen line is lost with the ink (the diagnostic thumbnail's outline runs along
        // the tissue edge and keeps 0.74 of stained pixels; the others keep more than 0.9).
        Assert.True(stainedKept >= 0.7 * stained, $"{file}: kept only {stainedKept} of {stained} stained pixels");
        if (ink > 200) Assert.True(inkKept <= 0.02 * ink, $"{file}: kept {inkKept} of {ink} ink pixels");
    }

    /// <summary>HSV saturation, 255 (max - min) / max.</summary>
    internal static int Saturation(int r, int g, int b)
    {
        int max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b));
        return max == 0 ? 0 : 255 * (max - min) / max;
    }

    /// <summary>Unmistakable marker ink: vivid green/blue, or pure red with blue no higher than green.</summary>
    internal static bool UnmistakableInk(int r, int g, int b)
    {
        double hue = TissueDetector.Hue(r, g, b);
        return Saturation(r, g, b) > 100 && (hue is >= 90 and < 230 || ((hue >= 350 || hue < 15) && b <= g + 10 && g < 60));
    }
}
