using System.Globalization;
using System.Text;
using System.Text.Json;
using Histo.IO;
using Histo.Slides;
using static Histo.Synthesis.ProceduralNoise;

namespace Histo.Synthesis;

/// <summary>
/// Image-caption pairs from the synthetic slides' ground truth, to train a small vision-language model here
/// (<c>histo clip-train</c>): patches read back from the slides at a quarter of their resolution (wide enough to show glands
/// and nests), each captioned from what lies under its centre (tumour subtype and grade, or normal tissue) in one of several
/// phrasings, with some noise (a word dropped). Writes <c>captions/images/SLIDE_x_y.png</c>, <c>captions/captions.csv</c>
/// (<c>image,caption,label,slide_id,case_id</c>) and <c>captions/prompts.json</c>, zero-shot prompts whose wording differs
/// from the captions'.
/// </summary>
public static class SyntheticCaptions
{
    /// <summary>Patches are read at level 0 over this many times their side, then shrunk to it.</summary>
    public const int Zoom = 4;
    const double DropWordProbability = 0.1;

    static readonly Dictionary<string, string[]> Phrases = new()
    {
        ["glandular"] = ["adenocarcinoma with irregular crowded glands", "invasive glandular carcinoma", "malignant glands lined by "
            + "stratified atypical nuclei", "back-to-back neoplastic glands", "gland-forming carcinoma"],
        ["solid"] = ["carcinoma growing in solid nests", "sheets of pleomorphic polygonal tumour cells", "solid tumour nests with "
            + "keratin pearls", "squamous-like carcinoma", "nests of atypical cells with prominent nucleoli"],
        ["normal"] = ["normal mucosa with regular glands", "benign glands in fibrous stroma", "unremarkable benign tissue",
            "collagenous stroma with scattered lymphocytes", "normal tissue without atypia"],
    };
    static readonly string[] Grades = ["", "well differentiated", "moderately differentiated", "poorly differentiated"];
    static readonly string[] Openings = ["", "H&E image of ", "histology showing ", "a patch of ", "microscopy: "];

    /// <summary>The prompt file for zero-shot on these patches (CONCH/MI-Zero layout), worded unlike the captions.</summary>
    public static readonly object Prompts = new
    {
        classnames = new Dictionary<string, string[]>
        {
            ["glandular"] = ["adenocarcinoma", "glandular carcinoma"],
            ["solid"] = ["solid carcinoma", "squamous carcinoma"],
            ["normal"] = ["normal tissue", "benign tissue"],
        },
        templates = new[] { "an H&E image of CLASSNAME.", "CLASSNAME", "a histopathology patch of CLASSNAME" },
    };

    public static void Write(IReadOnlyList<SyntheticSlideSpec> specs, string slidesDir, string outputDir, int perSlide, int size)
    {
        string images = Path.Combine(outputDir, "images");
        Directory.CreateDirectory(images);
        var csv = new StringBuilder("image,caption,label,slide_id,case_id\n");
        foreach (var spec in specs)
        {
            var tissue = new SyntheticTissue(spec);
            using var slide = WholeSlide.Open(Path.Combine(slidesDir, spec.SlideId + ".tif"));
            int read = size * Zoom, written = 0;
            for (int attempt = 0; attempt < 4000 && written < perSlide; attempt++)
            {
                long x = (long)(Unit(spec.Seed, 300, attempt) * (spec.Width - read)), y = (long)(Unit(spec.Seed, 301,
                    attempt) * (spec.Height - read));
                double u = (x + read / 2.0) * spec.Mpp, v = (y + read / 2.0) * spec.Mpp;
                if (!tissue.InTissue(u, v)) continue;
                bool tumour = tissue.InTumour(u, v);
                // Half of a tumour slide's patches come from its tumour, while the first half of the attempts last.
                if (spec.Subtype != TissueSubtype.Normal && written % 2 == 0 && !tumour && attempt < 2000) continue;
                string label = tumour ? spec.Label : "normal";
                string name = $"{spec.SlideId}_{x}_{y}.png";
                string path = Path.Combine(images, name);
                if (!File.Exists(path)) slide.ReadRegion(x, y, 0, read, read).Resize(size, size).Save(path);
                csv.Append(CultureInfo.InvariantCulture, $"images/{name},{Caption(spec, label, tumour, Hash(spec.Seed, 302, attempt))},"
                    + $"{label},{spec.SlideId},{spec.CaseId}\n");
                written++;
            }
        }
        AtomicFile.WriteAllText(Path.Combine(outputDir, "captions.csv"), csv.ToString());
        AtomicFile.WriteAllText(Path.Combine(outputDir, "prompts.json"), JsonSerializer.Serialize(Prompts, new JsonSerializerOptions
            { WriteIndented = true }));
    }

    static string Caption(SyntheticSlideSpec spec, string label, bool tumour, ulong seed)
    {
        var phrases = Phrases[label];
        string text = Openings[(int)(Unit(seed, 1) * Openings.Length)] + phrases[(int)(Unit(seed, 2) * phrases.Length)];
        if (tumour && Unit(seed, 3) < 0.6) text = $"{Grades[spec.Grade]} {text}";
        var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        if (words.Count > 3 && Unit(seed, 4) < DropWordProbability) words.RemoveAt((int)(Unit(seed, 5) * words.Count));
        return string.Join(' ', words);
    }
}
