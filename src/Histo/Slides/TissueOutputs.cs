using Histo.IO;

namespace Histo.Slides;

/// <summary>The files <c>histo tissue</c> writes for one slide.</summary>
public sealed record TissueOutputs(string MaskPng, string OverlayPng, string GeoJsonPath, int Polygons, double TissueFraction,
    double InkFraction)
{
    /// <summary>
    /// Writes the mask PNG, the overlay PNG and the tissue and ink contours as QuPath-readable GeoJSON (level-0 pixels),
    /// each atomically.
    /// </summary>
    public static TissueOutputs Write(TissueMask mask, string slideId, string outputDir)
    {
        JobFolder.CreateDirectory(outputDir);
        string maskPath = Path.Combine(outputDir, slideId + ".mask.png");
        string overlayPath = Path.Combine(outputDir, slideId + ".overlay.png");
        string geoJsonPath = Path.Combine(outputDir, slideId + ".tissue.geojson");
        mask.ToImage().Save(maskPath);
        mask.Overlay().Save(overlayPath);
        var polygons = mask.Polygons();
        // Ink is reported as its own class, so a user sees in QuPath what was cut (or, with --keep-ink, what was kept).
        var features = polygons.Select(rings => new GeoJson.Feature(rings, "Tissue", (0, 160, 0)))
            .Concat(mask.InkPolygons().Select(rings => new GeoJson.Feature(rings, "Ink", (40, 90, 255))));
        AtomicFile.WriteAllText(geoJsonPath, GeoJson.FeatureCollection(features));
        return new TissueOutputs(maskPath, overlayPath, geoJsonPath, polygons.Count, mask.TissueFraction, mask.InkFraction);
    }
}
