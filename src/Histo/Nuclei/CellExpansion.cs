using Histo.Imaging;
using Histo.IO;

namespace Histo.Nuclei;

/// <summary>
/// Cells from nuclei, as QuPath's cell detection draws them: each nucleus grown by a fixed distance into the background,
/// cells never overlapping (a background pixel within the distance joins the nucleus whose nearest pixel is nearest).
/// scikit-image's <c>expand_labels</c> computes the same; tools/reference/cell_expansion_reference.py checks against it.
/// </summary>
public static class CellExpansion
{
    /// <summary>QuPath's default cell expansion (WatershedCellDetection's cellExpansionMicrons).</summary>
    public const double DefaultMicrons = 5;

    /// <param name="distance">Expansion in pixels (Euclidean; pixels at exactly this distance are included).</param>
    public static LabelMap Expand(LabelMap nuclei, double distance)
    {
        int w = nuclei.Width, h = nuclei.Height;
        var background = new byte[nuclei.Labels.Length];
        for (int i = 0; i < background.Length; i++) background[i] = nuclei.Labels[i] == 0 ? (byte)255 : (byte)0;
        var (reach, nearest) = GreyFilters.FeatureTransform(background, w, h);
        var cells = new int[background.Length];
        for (int i = 0; i < cells.Length; i++)
            cells[i] = nuclei.Labels[i] != 0 ? nuclei.Labels[i] : nearest[i] >= 0 && reach[i] <= distance ? nuclei.Labels[nearest[i]] : 0;
        return new LabelMap(w, h, cells);
    }
}
