namespace Histo.Nuclei;

/// <summary>
/// Seeded watershed by priority flooding (Meyer 1991; Beucher and Meyer 1993), as scikit-image's
/// <c>segmentation.watershed(image, markers, mask=mask)</c> floods: the seeds' pixels go on a queue ordered by
/// (elevation, arrival); the lowest is taken and each unlabelled 4-neighbour inside the mask gets its label and joins the
/// queue. Basins grow from the seeds in order of elevation until they meet, so touching nuclei split along the ridge.
/// </summary>
public static class Watershed
{
    /// <summary>Labels every mask pixel reachable from a seed; <paramref name="seeds"/> holds labels (0 none), returned filled.</summary>
    public static int[] Flood(float[] elevation, int[] seeds, byte[] mask, int width, int height)
    {
        var labels = (int[])seeds.Clone();
        var queue = new PriorityQueue<int, (float Elevation, long Arrival)>();
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] != 0) queue.Enqueue(i, (elevation[i], 0));
        long arrival = 1;
        while (queue.TryDequeue(out int p, out _))
        {
            int x = p % width, y = p / width, label = labels[p];
            // The order of scikit-image's raveled 4-neighbourhood: up, left, right, down.
            if (y > 0) Visit(p - width);
            if (x > 0) Visit(p - 1);
            if (x < width - 1) Visit(p + 1);
            if (y < height - 1) Visit(p + width);

            void Visit(int q)
            {
                if (labels[q] != 0 || mask[q] == 0) return;
                labels[q] = label;
                queue.Enqueue(q, (elevation[q], arrival++));
            }
        }
        return labels;
    }
}
