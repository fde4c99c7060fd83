using System.Net;
using System.Text;

namespace Histo.Viewer;

/// <summary>The server's HTML: the slide list and a page per slide (its script is wwwroot/viewer.js). Every value from a file
/// name or a CSV is HTML-encoded.</summary>
static class Pages
{
    static string E(string? s) => WebUtility.HtmlEncode(s ?? "");

    static string Layout(string title, string body, string? bodyAttributes = null) =>
        $"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{E(title)} · Histo</title>"
        + "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        + "<link rel=\"stylesheet\" href=\"/static/viewer.css\"></head>"
        + $"<body {bodyAttributes}>{body}</body></html>";

    public static string Index(SlideCatalog catalog)
    {
        var sb = new StringBuilder("<header><h1>Histo</h1><span>").Append(catalog.Slides.Count).Append(" slide(s)</span></header>")
            .Append("<main class=\"grid\">");
        foreach (var s in catalog.Slides)
        {
            string id = Uri.EscapeDataString(s.Id);
            sb.Append($"<a class=\"card\" href=\"/view/{id}\" data-slide=\"{E(s.Id)}\">")
              .Append($"<img loading=\"lazy\" alt=\"\" src=\"/thumb/{id}.jpeg\">")
              .Append($"<div class=\"name\">{E(s.Id)}</div>");
            if (s.Label is not null) sb.Append($"<div>label <b>{E(s.Label)}</b></div>");
            if (s.Predicted is not null)
            {
                string p = s.Probabilities is { } probs && probs.TryGetValue(s.Predicted, out var v) ? $" ({v:0.00})" : "";
                string cls = s.Label is null ? "" : s.Label == s.Predicted ? " right" : " wrong";
                sb.Append($"<div class=\"prediction{cls}\">predicted <b>{E(s.Predicted)}</b>{p}</div>");
            }
            if (s.Overlays.Count > 0) sb.Append($"<div class=\"overlays\">{E(string.Join(", ", s.Overlays.Select(o => o.Name)))}</div>");
            sb.Append("</a>");
        }
        return Layout("slides", sb.Append("</main>").ToString());
    }

    public static string Viewer(CatalogSlide s) => Layout(s.Id,
        "<div id=\"osd\"></div><aside id=\"panel\"><a href=\"/\">&larr; slides</a>"
        + $"<h2>{E(s.Id)}</h2><div id=\"meta\"></div><h3>Overlays</h3><div id=\"layers\"></div><div id=\"legend\"></div>"
        + "<h3>Selected</h3><div id=\"details\">Click a tile or a cell.</div></aside><div id=\"scalebar\"><div></div><span></span></div>"
        + "<script src=\"/static/openseadragon/openseadragon.min.js\"></script><script src=\"/static/viewer.js\"></script>",
        $"class=\"viewer\" data-slide=\"{E(s.Id)}\"");

    public static string Error(string id, string error) => Layout(id,
        $"<header><h1>Histo</h1></header><main class=\"error\"><h2>{E(id)} cannot be shown</h2><p>{E(error)}</p>"
        + "<p><a href=\"/\">&larr; slides</a></p></main>");
}
