namespace Histo.Slides;

/// <summary>What <c>histo info</c> reports about a slide (also its JSON form).</summary>
public sealed record SlideSummary(string Path, string SlideId, string Vendor, IReadOnlyList<SlideLevel> Levels,
    double? MppX, double? MppY, double? ObjectivePower, IReadOnlyList<AssociatedImage> AssociatedImages)
{
    public static SlideSummary Of(WholeSlide slide) => new(slide.Path, slide.SlideId, slide.Vendor, slide.Levels,
        slide.Mpp?.X, slide.Mpp?.Y, slide.ObjectivePower, slide.AssociatedImages);
}
